"""One storage key named by persistent ids that disagree on its element type or size: torch.load
keeps the first id's view (its storage cache), so the scan cannot judge what a loader reads;
such a file is an error, never safe (red-team finding, issue 13 round)."""

from __future__ import annotations

from pathlib import Path

import torch

import ckptguard
from tests.factories import rewrite_data_pkl


def _two_storages(path: Path, *, legacy: bool) -> Path:
    torch.save(
        {"a": torch.zeros(1), "b": torch.zeros(4)},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    return path


def test_zip_storage_key_with_two_sizes_is_an_error(tmp_path: Path) -> None:
    src = _two_storages(tmp_path / "ok.pt", legacy=False)
    assert ckptguard.scan(src).files[0].verdict == "safe"
    # "a" (1 element) now names storage 1 too: every id fits the 16-byte record, but torch.load
    # keeps the first view (1 element) for "b" as well
    bad = rewrite_data_pkl(src, tmp_path / "bad.pt", b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x001")
    report = ckptguard.scan(bad).files[0]
    assert report.verdict == "error"
    assert any("disagree" in f.message for f in report.findings)


def test_shared_storage_views_stay_safe(tmp_path: Path) -> None:
    base = torch.arange(8.0)
    path = tmp_path / "views.pt"
    torch.save({"a": base[:2], "b": base[2:], "c": base}, path)
    assert ckptguard.scan(path).files[0].verdict == "safe"
