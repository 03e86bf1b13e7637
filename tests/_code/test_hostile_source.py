"""Source files built to break the checker: each is an error result (exit 2), never a crash,
never "clean". Deep nesting runs in a subprocess, so a native stack overflow would show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ckptguard._cli import main

HEAD = "import torch\n"
TAIL = "torch.load(p)\n"


def _cli(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckptguard", "code", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "body",
    [
        "x = " + "(" * 5000 + "1" + ")" * 5000,
        "x = " + "[" * 3000 + "]" * 3000,
        "x = " + "-" * 50000 + "1",
        "x = " + "+".join(["1"] * 50000),
        "x = a" + ".b" * 20000,
        "x = f" + "()" * 20000,
        "x = " + "-" * 950 + "1",  # CPython parses it, the analysis is too deep
    ],
    ids=["parens", "lists", "unary", "binop", "attributes", "calls", "deep-but-valid"],
)
def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path, body: str) -> None:
    hostile = tmp_path / "hostile.py"
    hostile.write_text(HEAD + body + "\n" + TAIL)
    fine = tmp_path / "fine.py"
    fine.write_text(HEAD + TAIL)
    proc = _cli(tmp_path, hostile, fine)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "hostile.py" in proc.stderr and "cannot parse" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "fine.py:2:1: CKG101" in proc.stdout  # the other file is still checked


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"import torch\x00\ntorch.load(p)\n", "null bytes"),
        (b"# coding: no-such-codec\nimport torch\ntorch.load(p)\n", "unknown encoding"),
        (b"import torch\ns = '\xff'\ntorch.load(p)\n", "can't decode"),
        (b"import torch\ntorch.load(p\n", "was never closed"),
        (b"import torch\n  torch.load(p)\n", "unexpected indent"),
    ],
)
def test_broken_source_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, message: str
) -> None:
    path = tmp_path / "broken.py"
    path.write_bytes(data)
    assert main(["code", str(path), "--fix"]) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in out + err
    assert path.read_bytes() == data  # --fix never touches it


def test_named_symlink_is_checked_but_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link named on the command line is read through; --fix does not write through it
    (it names the target to fix instead). See tests/_code/test_tree_bounds.py."""
    real = tmp_path / "real.py"
    real.write_text(HEAD + TAIL)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert main(["code", str(link)]) == 1  # checked: the finding is reported
    capsys.readouterr()
    assert main(["code", str(link), "--fix"]) == 2
    err = capsys.readouterr().err
    assert "never writes through" in err and f"ckptguard code --fix {real}" in err
    assert link.is_symlink()
    assert real.read_text() == HEAD + TAIL
