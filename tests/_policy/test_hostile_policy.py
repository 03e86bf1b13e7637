"""The policy hostile corpus (tests/hostile_policy.py): every payload really runs under the stock
loader, and ckptguard's scan, load and convert refuse it without running it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from ckptguard._policy._discovery import ENV_VAR
from tests.factories import data_pkl_zip
from tests.hostile_policy import CASES, PolicyCase, materialise

_IDS = [c.name for c in CASES]


def _stage(case: PolicyCase, root: Path) -> tuple[Path, Path]:
    """The case's repository: its package files, its pyproject, a checkpoint; the marker."""
    root.mkdir(parents=True, exist_ok=True)
    materialise(case, root)
    marker = root / "PWNED"
    ckpt = root / "model.pt"
    ckpt.write_bytes(data_pkl_zip(case.build(str(marker))))
    (root / "model.pkl").write_bytes(case.build(str(marker)))
    return ckpt, marker


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_the_payload_runs_under_the_stock_loaders(case: PolicyCase, tmp_path: Path) -> None:
    for loader in ("pickle", "torch"):
        root = tmp_path / loader
        _, marker = _stage(case, root)
        load = (
            "import pickle; pickle.loads(open('model.pkl', 'rb').read())"
            if loader == "pickle"
            else "import torch; torch.load('model.pt', weights_only=False)"
        )
        code = "\n".join(
            ["import sys", "sys.path.insert(0, '.')", "try:", f"    {load}", "except Exception:"]
        )
        code += "\n    pass\n"
        subprocess.run(
            [sys.executable, "-c", code], cwd=root, timeout=120, check=False, capture_output=True
        )
        assert marker.exists(), f"{case.name}: the payload did not run under {loader}"


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_ckptguard_refuses_it_and_runs_nothing(
    case: PolicyCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    ckpt, marker = _stage(case, root)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(root)  # scanning from inside the downloaded repository
    monkeypatch.syspath_prepend(str(root))  # its packages are importable, as with python -c
    allow = list(case.allow)
    for path in (ckpt, root / "model.pkl", root):
        report = ckptguard.scan(path, allow=allow)
        assert report.exit_code == 1, (path, [f.globals for f in report.files])
        assert all(f.verdict is not FileVerdict.SAFE for f in report.files)
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(ckpt, allow=allow)
    out = tmp_path / "out.pt"
    try:  # a dangerous global is refused; an unknown one is rewritten as inert data
        ckptguard.convert(ckpt, out, allow=allow)
    except ckptguard.CheckpointError:
        assert not out.exists()
    else:
        assert any(g.verdict.value == "unknown" for f in report.files for g in f.globals)
        assert ckptguard.scan(out).exit_code == 0
    assert not marker.exists()


_PLAIN = [c for c in CASES if not c.allow and not c.pyproject]


@pytest.mark.parametrize("case", _PLAIN, ids=[c.name for c in _PLAIN])
def test_aliases_of_dangerous_functions_are_dangerous_not_unknown(
    case: PolicyCase, tmp_path: Path
) -> None:
    ckpt, _ = _stage(case, tmp_path)
    report = ckptguard.scan(ckpt)
    assert report.files[0].verdict is FileVerdict.DANGEROUS
    for g in report.files[0].globals:
        if g.verdict.value != "safe":
            assert g.verdict.value == "dangerous", g
            with pytest.raises(ckptguard.PolicyError, match="cannot be allowed"):
                ckptguard.scan(ckpt, allow=[g.qualified_name])
