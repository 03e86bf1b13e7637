"""After `convert --in-place`, the user's CI (`ckptguard scan TREE`) is green.

The originals go to TREE/.ckptguard-backup/..., which a directory scan does not walk (listed in
``skipped`` with the reason); before, FILE.bak copies next to each file failed the next scan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ckptguard._cli import main
from tests import factories
from tests._load import hostile


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "repo" / "checkpoints"
    (tree / "run1").mkdir(parents=True)
    factories.user_enum_checkpoint(tree / "enum.ckpt")
    factories.training_checkpoint(tree / "run1" / "last.pt")
    factories.legacy_checkpoint(tree / "run1" / "legacy.pt")
    factories.state_dict(tree / "clean.pt")
    return tree


def test_ci_scan_is_green_after_an_in_place_migration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path)
    assert main(["scan", str(tree)]) == 1  # CI red before: the files need review
    originals = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert main(["convert", "--in-place", str(tree)]) == 0
    capsys.readouterr()
    # the user's CI step, for the whole tree and for the repository around it
    assert main(["scan", str(tree)]) == 0, capsys.readouterr().out
    assert main(["scan", str(tmp_path / "repo")]) == 0, capsys.readouterr().out
    capsys.readouterr()
    # every original is kept, byte for byte, under .ckptguard-backup at the same relative path
    backup = tree / ".ckptguard-backup"
    for path, data in originals.items():
        kept = backup / path.relative_to(tree)
        if path.name == "clean.pt":
            assert not kept.exists() and path.read_bytes() == data  # nothing to convert
        else:
            assert kept.read_bytes() == data
    assert not list(tree.rglob("*.bak"))
    # the converted files load with stock weights-only torch.load
    assert torch.load(tree / "enum.ckpt")["hparams"]["mode"] == "infer"
    # the skip is reported, with its reason, in JSON
    main(["scan", str(tree), "--json"])
    doc = json.loads(capsys.readouterr().out)
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert "convert --in-place" in skipped[str(backup)]
    # and the backups can still be checked by naming them
    assert main(["scan", str(backup)]) == 1


def test_a_hostile_file_in_a_backup_directory_is_found_when_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "t"
    (tree / ".ckptguard-backup").mkdir(parents=True)
    marker = tmp_path / "PWNED"
    evil = hostile.torch_zip_with_pickle(
        tree / ".ckptguard-backup" / "evil.pt", hostile.os_system(marker)
    )
    assert main(["scan", str(tree / ".ckptguard-backup")]) == 1
    assert main(["scan", str(evil)]) == 1
    assert "os.system" in capsys.readouterr().out
    assert not marker.exists()


def test_second_migration_does_not_touch_the_backups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(tmp_path)
    assert main(["convert", "--in-place", str(tree)]) == 0
    kept = {p: p.read_bytes() for p in (tree / ".ckptguard-backup").rglob("*") if p.is_file()}
    assert main(["convert", "--in-place", str(tree)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("0 converted")
    assert {p: p.read_bytes() for p in kept} == kept
