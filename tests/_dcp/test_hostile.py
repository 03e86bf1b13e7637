"""Every hostile DCP sample: its payload runs under stock dcp.load (liveness), and ckptguard's
scan, dcp.load, patched dcp.load and convert refuse it with nothing run."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptguard
from ckptguard import CheckpointError, FileVerdict
from tests.hostile_dcp import LIVE, SAMPLES
from tests.subproc import run_python

_STOCK = """
import sys, warnings, torch
warnings.simplefilter("ignore")
import torch.distributed.checkpoint as dcp
for root in sys.argv[1:]:
    sd = {"w": torch.zeros(4, 3), "step": 0, "cfg": None}
    try:
        dcp.load(sd, checkpoint_id=root, no_dist=True)
    except BaseException as exc:
        print(root, "failed:", type(exc).__name__)
"""


def _make(benign: Path, name: str) -> tuple[Path, Path]:
    marker = benign.parent / "MARKER"
    SAMPLES[name](benign, marker)
    return benign, marker


def test_payloads_run_under_stock_dcp_load(benign_template: Path, tmp_path: Path) -> None:
    """Liveness, one child process for every live sample (each in a directory of its own)."""
    import shutil

    roots, markers = [], []
    for name in LIVE:
        root = tmp_path / name / "ckpt"
        shutil.copytree(benign_template, root)
        _, marker = _make(root, name)
        roots.append(str(root))
        markers.append(marker)
    res = run_python("-c", _STOCK, *roots, cwd=tmp_path)
    missing = [n for n, m in zip(LIVE, markers, strict=True) if not m.exists()]
    assert not missing, res.stdout + res.stderr


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_scan_refuses(benign: Path, name: str) -> None:
    root, marker = _make(benign, name)
    report = ckptguard.scan(root)
    assert report.verdict in (FileVerdict.DANGEROUS, FileVerdict.ERROR), report
    (unit,) = report.files
    assert unit.format == "dcp"
    rules = {f.rule for f in unit.findings} | {f.rule for i in unit.items for f in i.findings}
    dangerous = [g for g in unit.globals if g.verdict.value == "dangerous"]
    assert dangerous or any(r.startswith(("dcp-", "pickle-", "scan-")) for r in rules), rules
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_dcp_load_refuses(benign: Path, name: str) -> None:
    import torch

    import ckptguard.dcp

    root, marker = _make(benign, name)
    sd = {"w": torch.zeros(4, 3), "step": 0, "cfg": None}
    with pytest.raises(CheckpointError):
        ckptguard.dcp.load(sd, checkpoint_id=root)
    assert sd["step"] == 0
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_convert_refuses(benign: Path, name: str, tmp_path: Path) -> None:
    root, marker = _make(benign, name)
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError):
        ckptguard.convert(root, out)
    assert not out.exists()
    assert not marker.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ckptguard")]


@pytest.mark.parametrize("name", LIVE)
def test_patched_dcp_load_refuses(benign: Path, name: str) -> None:
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    root, marker = _make(benign, name)
    sd = {"w": torch.zeros(4, 3), "step": 0, "cfg": None}
    with ckptguard.patched(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BaseException):  # noqa: B017 - dcp wraps it (CheckpointException)
            dcp.load(sd, checkpoint_id=str(root), no_dist=True)
        with pytest.raises(BaseException):  # noqa: B017
            dcp_to_torch_save(str(root), str(root.parent / "x.pt"))
    assert not marker.exists()
    assert not (root.parent / "x.pt").exists()
