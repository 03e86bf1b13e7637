"""End-to-end tests of ``ckptguard code`` (in process via main(argv))."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ckptguard._cli import main
from ckptguard._code._rules import RULES

RISKY = """\
import torch

def restore(path):
    return torch.load(path, weights_only=False)  # resume
"""

CLEAN = """\
import torch

def restore(path):
    return torch.load(path, weights_only=True)
"""

UNFIXABLE = """\
import pickle
import torch

loader = torch.load
data = pickle.loads(blob)
"""


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["code", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "risky.py").write_text(RISKY)
    (tmp_path / "pkg" / "clean.py").write_text(CLEAN)
    (tmp_path / "pkg" / "unfixable.py").write_text(UNFIXABLE)
    for skipped in (".git", ".venv", "build", "node_modules"):
        (tmp_path / "pkg" / skipped).mkdir()
        (tmp_path / "pkg" / skipped / "vendored.py").write_text(RISKY)
    (tmp_path / "pkg" / "myenv").mkdir()
    (tmp_path / "pkg" / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "pkg" / "myenv" / "site.py").write_text(RISKY)
    return tmp_path


def test_clean_exits_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg/clean.py")
    assert code == 0, out
    assert "No findings; 1 file checked." in out


def test_findings_exit_1_and_skip_dirs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg")
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.startswith("pkg")]
    assert [line.split(" ")[0:2] for line in lines] == [
        ["pkg/risky.py:4:12:", "CKG102"],
        ["pkg/unfixable.py:4:10:", "CKG104"],
        ["pkg/unfixable.py:5:8:", "CKG201"],
    ]
    assert "[*]" in lines[0] and "[*]" not in lines[1] + lines[2]
    assert "3 files checked" in out  # .git, .venv, build, node_modules, myenv skipped


def test_explicit_file_in_skipped_dir_is_checked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "pkg/build/vendored.py")
    assert code == 1
    assert "CKG102" in out


def test_json_shape(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg", "--json")
    assert code == 1
    doc = json.loads(out)
    assert list(doc) == ["findings"]
    first = doc["findings"][0]
    assert {"path", "line", "column", "rule", "message", "fixable"} <= set(first)
    assert (first["path"], first["line"], first["column"], first["rule"], first["fixable"]) == (
        os.path.join("pkg", "risky.py"),
        4,
        12,
        "CKG102",
        True,
    )
    assert [x["rule"] for x in doc["findings"]] == ["CKG102", "CKG104", "CKG201"]


def test_json_clean_is_empty_list(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg/clean.py", "--json")
    assert (code, json.loads(out)) == (0, {"findings": []})


def test_diff_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (project / "pkg" / "risky.py").read_text()
    code, out, err = run(capsys, "pkg/risky.py", "--diff")
    assert code == 1
    assert (project / "pkg" / "risky.py").read_text() == before
    assert out.startswith("--- a/pkg/risky.py\n+++ b/pkg/risky.py\n")
    assert "-    return torch.load(path, weights_only=False)  # resume\n" in out
    assert "+    return ckptguard.load(path)  # resume\n" in out
    assert "+import ckptguard\n" in out
    assert "Found 1 finding" in err
    # the diff applies and gives exactly what --fix writes
    patched = project / "patched"
    patched.mkdir()
    (patched / "pkg").mkdir()
    (patched / "pkg" / "risky.py").write_text(before)
    subprocess.run(["patch", "-s", "-p1"], input=out, text=True, cwd=patched, check=True)
    code, _, _ = run(capsys, "pkg/risky.py", "--fix")
    assert code == 0
    assert (patched / "pkg" / "risky.py").read_text() == (project / "pkg" / "risky.py").read_text()


def test_fix_writes_and_exit_reflects_remaining(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode = 0o640
    (project / "pkg" / "risky.py").chmod(mode)
    code, out, _ = run(capsys, "pkg", "--fix")
    assert code == 1  # unfixable.py still has findings
    assert "Fixed 1 finding in 1 file; 2 remaining" in out
    fixed = (project / "pkg" / "risky.py").read_text()
    assert "ckptguard.load(path)  # resume" in fixed
    assert (project / "pkg" / "risky.py").stat().st_mode & 0o777 == mode
    assert (project / "pkg" / "unfixable.py").read_text() == UNFIXABLE
    assert [p.name for p in (project / "pkg").iterdir() if "ckptguard" in p.name] == []
    code, out, _ = run(capsys, "pkg/risky.py", "--fix")
    assert code == 0
    assert "Fixed 0 findings" in out


def test_ignore_comments_and_flags(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "pkg" / "unfixable.py"
    path.write_text(UNFIXABLE.replace("blob)", "blob)  # ckptguard: ignore[CKG201]"))
    code, out, _ = run(capsys, "pkg/unfixable.py", "--json")
    assert [x["rule"] for x in json.loads(out)["findings"]] == ["CKG104"]
    code, out, _ = run(capsys, "pkg/unfixable.py", "--ignore", "torch-load-as-value")
    assert code == 0, out
    code, out, _ = run(capsys, "pkg", "--select", "CKG1", "--ignore", "CKG102", "--json")
    assert [x["rule"] for x in json.loads(out)["findings"]] == ["CKG104"]


def test_unknown_rule_is_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "pkg", "--select", "CKG999")
    assert code == 2
    assert "unknown rule 'CKG999'" in err


def test_json_and_diff_conflict(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "pkg", "--json", "--diff")
    assert code == 2
    assert "stdout" in err


def test_parse_error_exits_2_and_others_still_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pkg" / "broken.py").write_text("def f(:\n    pass\n")
    code, out, err = run(capsys, "pkg")
    assert code == 2
    assert "pkg/broken.py:1:" in err and "cannot parse" in err
    assert "python -m py_compile pkg/broken.py" in err
    assert "CKG102" in out  # the other files were still checked


def test_parse_error_with_fix_writes_nothing_there(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = "import torch\ntorch.load(p\n"
    (project / "pkg" / "broken.py").write_text(broken)
    code, _, _ = run(capsys, "pkg", "--fix")
    assert code == 2
    assert (project / "pkg" / "broken.py").read_text() == broken
    assert "ckptguard.load" in (project / "pkg" / "risky.py").read_text()


def test_missing_path_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "nope.py")
    assert code == 2
    assert "nope.py: error: no such file or directory" in err


def test_sarif(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pkg" / "broken.py").write_text("x = (\n")
    code, _, _ = run(capsys, "pkg", "--sarif", "code.sarif")
    assert code == 2
    doc = json.loads((project / "code.sarif").read_text())
    assert doc["version"] == "2.1.0" and "2.1.0" in doc["$schema"]
    (run_,) = doc["runs"]
    rules = run_["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == [r.id for r in RULES]
    assert ids[:5] == ["CKG101", "CKG102", "CKG103", "CKG104", "CKG105"]
    assert {"CKG106", "CKG201", "CKG202", "CKG301"} <= set(ids)
    assert all(r["fullDescription"]["text"] for r in rules)
    assert rules[0]["helpUri"].endswith("docs/code.md#ckg101-torch-load-no-weights-only")
    results = run_["results"]
    assert [(r["ruleId"], ids[r["ruleIndex"]]) for r in results] == [
        ("CKG102", "CKG102"),
        ("CKG104", "CKG104"),
        ("CKG201", "CKG201"),
    ]
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "pkg/risky.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] == 4 and loc["region"]["startColumn"] == 12
    assert results[0]["properties"]["fixable"] is True
    (invocation,) = run_["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert "pkg/broken.py" in note["message"]["text"]
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file://")


def test_sarif_to_stdout_alone(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg/risky.py", "--sarif", "-")
    assert code == 1
    assert json.loads(out)["runs"][0]["results"][0]["ruleId"] == "CKG102"


def test_code_command_does_not_import_libcst_until_run() -> None:
    script = (
        "import sys; from ckptguard._cli import build_parser; build_parser(); "
        "print('libcst' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_fix_with_json_lists_what_remains(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "pkg", "--fix", "--json")
    assert code == 1
    assert [x["rule"] for x in json.loads(out)["findings"]] == ["CKG104", "CKG201"]
    assert "ckptguard.load(path)" in (project / "pkg" / "risky.py").read_text()


def test_fix_with_diff_only_previews(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pkg/risky.py", "--fix", "--diff")
    assert code == 1
    assert "+    return ckptguard.load(path)  # resume" in out
    assert (project / "pkg" / "risky.py").read_text() == RISKY


def test_jobs_give_the_same_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(6):
        (project / "pkg" / f"copy{i}.py").write_text(RISKY if i % 2 else UNFIXABLE)
    code1, out1, _ = run(capsys, "pkg", "--json")
    code2, out2, _ = run(capsys, "pkg", "--json", "-j", "2")
    assert (code1, out1) == (code2, out2)
    assert len(json.loads(out1)["findings"]) == 3 + 3 * 1 + 3 * 2
    code, _, err = run(capsys, "pkg", "-j", "0")
    assert code == 2 and "must be at least 1" in err
