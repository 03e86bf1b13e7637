"""The fast paths of DCP load and convert (issue 14, Performance): tensor chunks scanned and
loaded by ranged reads of their shard range, whole-tensor chunk records copied by the kernel
into the converted archive. Same results as before, and nothing read outside a checked range."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import ckptguard
import ckptguard.dcp
from ckptguard import CorruptCheckpointError, UnsafeCheckpointError
from tests.hostile_dcp import _splice, payload_pickle

_BIG = 600_000  # float32 elements: 2.4 MB, above the 1 MiB ranged-read threshold


def _save(root: Path, sd: dict[str, Any]) -> None:
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(sd, checkpoint_id=str(root), no_dist=True)


def _big() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    return {
        "w": torch.randn(_BIG, generator=g),
        "m": torch.randn(300, 2000, generator=g).to(torch.bfloat16),
        "b": torch.arange(5),
        "step": 3,
    }


def _zeros() -> dict[str, Any]:
    import torch

    return {
        "w": torch.zeros(_BIG),
        "m": torch.zeros(300, 2000, dtype=torch.bfloat16),
        "b": torch.zeros(5, dtype=torch.int64),
        "step": 0,
    }


def test_large_chunks_load_identically_to_dcp_load(tmp_path: Path) -> None:
    import torch
    import torch.distributed.checkpoint as dcp

    root = tmp_path / "c"
    _save(root, _big())
    stock, ours = _zeros(), _zeros()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(stock, checkpoint_id=str(root), no_dist=True)
        ckptguard.dcp.load(ours, checkpoint_id=root, no_dist=True)
    for k in ("w", "m", "b"):
        assert ours[k].dtype == stock[k].dtype and torch.equal(ours[k], stock[k])
    assert torch.equal(ours["w"], _big()["w"])
    assert ours["step"] == stock["step"] == 3


def test_convert_copies_whole_tensor_records_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from ckptguard._dcp import _convert

    def no_assembly(*_: Any) -> Any:
        raise AssertionError("a whole-tensor chunk was assembled in memory")

    monkeypatch.setattr(_convert, "_assemble", no_assembly)
    root = tmp_path / "c"
    src = _big()
    _save(root, src)
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    out = tmp_path / "out.pt"
    ckptguard.convert(root, out)
    back = torch.load(out, weights_only=True)
    for k in ("w", "m", "b"):
        assert back[k].dtype == src[k].dtype and torch.equal(back[k], src[k])
    assert back["step"] == 3
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before  # source untouched
    import zipfile

    with zipfile.ZipFile(out) as z:  # every CRC in the archive is true
        assert z.testzip() is None


def _hostile_chunk(marker: Path) -> bytes:
    """A torch zip whose data.pkl opens ``marker``, padded with a 3 MiB storage record so that
    it takes the ranged-read path."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload_pickle(marker))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", bytes(3 << 20))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def test_hostile_pickle_in_a_large_tensor_chunk_is_refused(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "marker"
    blob = _hostile_chunk(marker)
    # liveness: a permissive torch.load of the chunk runs the payload
    live = tmp_path / "live.pt"
    live.write_bytes(blob)
    code = f"import torch; torch.load({str(live)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists()
    marker.unlink()

    root = tmp_path / "c"
    _save(root, _big())
    _splice(root, "w", blob)
    with warnings.catch_warnings(), pytest.raises(UnsafeCheckpointError, match=r"builtins\.open"):
        warnings.simplefilter("ignore")
        ckptguard.dcp.load(_zeros(), checkpoint_id=root, no_dist=True)
    with pytest.raises(UnsafeCheckpointError):
        ckptguard.convert(root, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    assert not marker.exists()
    del torch


def test_ranged_source_never_reads_outside_its_range(tmp_path: Path) -> None:
    from ckptguard._load._source import Source

    p = tmp_path / "f"
    p.write_bytes(bytes(range(40)))
    fd = os.open(p, os.O_RDONLY)
    try:
        src = Source("f[5:10]", 10, fd=fd, base=5)
        assert src.read(0, 10) == bytes(range(5, 15))
        view = memoryview(bytearray(3))
        src.read_into(7, view)
        assert bytes(view) == bytes(range(12, 15))
        for off, n in ((8, 4), (10, 1), (-1, 2)):
            with pytest.raises(CorruptCheckpointError):
                src.read(off, n)
        with pytest.raises(CorruptCheckpointError):
            src.read_into(8, memoryview(bytearray(4)))
    finally:
        os.close(fd)


def test_load_range_reads_exactly_the_checked_range(tmp_path: Path) -> None:
    import torch

    from ckptguard._load._safe_load import load_range
    from ckptguard._policy import default_policy

    t = torch.randn(_BIG)
    b = io.BytesIO()
    torch.save(t, b)
    blob = b.getvalue()
    p = tmp_path / "shard"
    p.write_bytes(b"x" * 100 + blob + b"y" * 100)
    fd = os.open(p, os.O_RDONLY)
    try:
        pol = default_policy()
        assert torch.equal(load_range(fd, 100, len(blob), "r", pol), t)
        for off, n in ((100, len(blob) - 1), (99, len(blob) + 1), (100, len(blob) + 1)):
            with pytest.raises(CorruptCheckpointError):
                load_range(fd, off, n, "r", pol)
    finally:
        os.close(fd)
