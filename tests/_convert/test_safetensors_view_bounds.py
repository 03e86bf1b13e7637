"""`convert --to safetensors` copies views out in full: the bytes it copies are bounded by the
tensor data the file holds (plus MAX_COPY_SLACK), so a file of a few KB cannot make it write
GBs. Before the fix, ``torch.ones(1).expand(3 * 10**9)`` (a 1.4 KB file, scanned `safe`)
made convert allocate 12 GB (an internal error where that failed, a 12 GB file where not).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ckptguard
from ckptguard._convert._safetensors import MAX_COPY_SLACK
from ckptguard._errors import CheckpointError

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")


def _refused(tmp_path: Path, obj: object) -> str:
    src = tmp_path / "src.pt"
    torch.save(obj, src)
    report: ckptguard.ScanReport = ckptguard.scan([src])  # type: ignore[assignment]
    assert str(report.files[0].verdict) == "safe"  # the file itself is plain tensors
    dst = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError, match="write them out in full") as info:
        ckptguard.convert(src, dst, to="safetensors")
    assert sorted(os.listdir(tmp_path)) == ["src.pt"]  # nothing written, no temp file left
    return str(info.value)


def test_broadcast_view_is_not_written_out(tmp_path: Path) -> None:
    n = (MAX_COPY_SLACK // 4) * 2  # logical bytes: twice the slack, over one float
    _refused(tmp_path, {"w": torch.ones(1).expand(n)})


def test_many_views_of_one_storage_are_bounded(tmp_path: Path) -> None:
    base = torch.zeros(1 << 18)  # 1 MiB
    views = {f"v{i}": base.view(-1) for i in range((MAX_COPY_SLACK >> 20) + 8)}
    _refused(tmp_path, views)


def test_tied_weights_and_position_ids_still_convert(tmp_path: Path) -> None:
    emb = torch.randn(64, 8)
    obj = {
        "emb": emb,
        "head": emb,  # tied: one storage, written twice
        "head_view": emb.view(-1),
        "position_ids": torch.arange(512).expand((1, -1)),  # HF's zero-stride buffer
    }
    src, dst = tmp_path / "src.pt", tmp_path / "out.safetensors"
    torch.save(obj, src)
    ckptguard.convert(src, dst, to="safetensors")
    back = ckptguard.load(dst)
    assert isinstance(back, dict)
    for k, v in obj.items():
        assert torch.equal(back[k], v), k
