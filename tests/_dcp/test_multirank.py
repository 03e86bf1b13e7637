"""Multi-rank DCP for real: 2 ranks (gloo, CPU) save a DTensor-sharded checkpoint; ckptguard
scans it as one unit, both ranks load it with ckptguard.dcp.load exactly as with dcp.load,
convert assembles the sharded tensor, and a hostile bytes item is refused on every rank."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from tests.hostile_dcp import bytes_item_payload_in
from tests.subproc import run_python

pytestmark = pytest.mark.slow


def _run(mode: str, root: Path) -> None:
    res = run_python("-m", "tests._dcp.multirank_worker", mode, str(root), cwd=root.parent)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_two_ranks_save_scan_load_convert(tmp_path: Path) -> None:
    import torch

    from tests._dcp.multirank_worker import _expected_full

    root = tmp_path / "ckpt"
    _run("save", root)
    shards = sorted(p.name for p in root.glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]
    report = ckptguard.scan(root)
    assert report.verdict is FileVerdict.SAFE, report
    _run("load", root)
    assert (tmp_path / "ckpt.ok-0").exists() and (tmp_path / "ckpt.ok-1").exists()
    out = tmp_path / "out.pt"
    ckptguard.convert(root, out)
    back = torch.load(out, weights_only=True)
    assert torch.equal(back["w"], _expected_full())
    assert back["step"] == 42


def test_two_ranks_refuse_a_hostile_bytes_item(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    _run("save", root)
    marker = tmp_path / "MARKER"
    bytes_item_payload_in(root, marker, "step")
    _run("refuse", root)
    assert (tmp_path / "ckpt.refused-0").exists() and (tmp_path / "ckpt.refused-1").exists()
    assert not marker.exists()
