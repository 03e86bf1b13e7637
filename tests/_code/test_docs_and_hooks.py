"""docs/code.md documents every rule; .pre-commit-hooks.yaml runs the real commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ckptguard._cli import main
from ckptguard._code._rules import RULES, lookup, select
from tests.pickleasm import system

ROOT = Path(__file__).resolve().parents[2]


def test_rule_ids_and_names_unique_and_stable_format() -> None:
    assert len({r.id for r in RULES}) == len({r.name for r in RULES}) == len(RULES)
    for r in RULES:
        assert re.fullmatch(r"CKG\d{3}", r.id)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name)
        assert r.level in {"warning", "error", "note"}
        assert "\n" not in r.doc
        assert lookup(r.id.lower()) is r and lookup(r.name) is r


def test_select_prefix() -> None:
    assert [r.id for r in select("CKG1")] == [
        "CKG101", "CKG102", "CKG103", "CKG104", "CKG105", "CKG106",
    ]  # fmt: skip
    assert [r.id for r in select("CKG2")] == ["CKG201", "CKG202"]
    assert select("CK") == ()
    assert select("nope") == ()


def test_docs_document_every_rule() -> None:
    docs = (ROOT / "docs" / "code.md").read_text()
    flat = " ".join(docs.split())
    for r in RULES:
        assert f"### {r.id} `{r.name}`" in docs
        assert r.doc in flat, r.id


def test_cli_help_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["code", "--help"]) == 0
    out = capsys.readouterr().out
    for r in RULES:
        assert f"{r.id}  {r.name}" in out


def _hooks() -> dict[str, dict[str, object]]:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return {h["id"]: h for h in hooks}


def test_pre_commit_hooks_shape() -> None:
    hooks = _hooks()
    assert set(hooks) == {"ckptguard-code", "ckptguard-scan"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert str(hook["entry"]).startswith("ckptguard ")
    assert hooks["ckptguard-code"]["types"] == ["python"]
    assert hooks["ckptguard-scan"]["types"] == ["file"]
    files = re.compile(str(hooks["ckptguard-scan"]["files"]))
    for name in ("model.pt", "w/x.pth", "a.ckpt", "pytorch_model.bin", "m.safetensors", "a.npz"):
        assert files.search(name), name
    for name in ("train.py", "README.md", "model.pt.txt", "config.yaml"):
        assert not files.search(name), name


def test_pre_commit_entries_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = _hooks()
    risky = tmp_path / "train.py"
    risky.write_text("import torch\nstate = torch.load('m.pt')\n")
    code_argv = shlex.split(str(hooks["ckptguard-code"]["entry"]))[1:]
    assert main([*code_argv, str(risky)]) == 1
    assert "CKG101" in capsys.readouterr().out

    evil = tmp_path / "evil.pt"
    evil.write_bytes(system("true"))  # never loaded: scan only parses
    scan_argv = shlex.split(str(hooks["ckptguard-scan"]["entry"]))[1:]
    assert main([*scan_argv, str(evil)]) == 1
    assert "DANGEROUS" in capsys.readouterr().out
