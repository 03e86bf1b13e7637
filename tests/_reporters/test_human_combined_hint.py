"""A directory scan prints one combined --allow list at the end, not the same hint per file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ckptguard._cli import main
from tests import factories


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    enum = factories.user_enum_checkpoint(tree / "a.pt")
    shutil.copy(enum, tree / "b.pt")
    shutil.copy(enum, tree / "c.pt")
    factories.state_dict(tree / "safe.pt")
    return tree


def test_directory_scan_combines_the_allow_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path)
    assert main(["scan", str(tree)]) == 1
    out = capsys.readouterr().out
    flag = f"--allow {factories.USER_ENUM}"
    assert out.count(flag) == 2  # once for scan, once for run: not once per file
    assert out.count("Python: ckptguard.load(path, allow=") == 1
    assert out.count("lasting fix:") == 1
    assert f"ckptguard scan {tree} {flag}" in out
    assert f"ckptguard convert --in-place {tree}" in out
    assert "3 files need 1 class allowed" in out
    assert out.count("see the combined --allow list below") == 3
    assert "restore_types=True" in out  # the convert trade-off is stated


def test_the_combined_command_really_clears_the_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path)
    main(["scan", str(tree)])
    out = capsys.readouterr().out
    line = next(x.strip() for x in out.splitlines() if x.strip().startswith("ckptguard scan "))
    argv = line.split()[1:]
    assert main(argv) == 0, capsys.readouterr().out


def test_one_file_keeps_its_own_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "one.pt")
    assert main(["scan", str(path)]) == 1
    out = capsys.readouterr().out
    assert "see the combined" not in out
    assert f"ckptguard scan {path} --allow {factories.USER_ENUM}" in out
    assert "trade-off: convert stores" in out and "restore_types=True" in out
