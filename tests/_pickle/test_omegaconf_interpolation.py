"""A `safe` verdict covers omegaconf configs only when reading them calls no resolver.

Liveness: a torch checkpoint whose DictConfig holds ``${ev:...}`` runs the resolver the loading
application registered (here one that touches a marker, standing for the common
``register_new_resolver("eval", eval)``) when the application reads the value. ckptguard's
scan, load and convert must refuse it; nothing runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import ckptguard
from ckptguard._errors import CheckpointError
from tests import hostile_red2
from tests.subproc import run_python as _python

pytest.importorskip("omegaconf")
REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))

MAKE = """\
import sys, torch
from omegaconf import OmegaConf
cfg = OmegaConf.create({"lr": 0.1, "x": "${ev:" + sys.argv[2] + "}", "y": "${lr}"})
torch.save({"hyper_parameters": cfg, "w": torch.ones(2)}, sys.argv[1])
"""

APP = """\
import pathlib, sys, torch
from omegaconf import OmegaConf
OmegaConf.register_new_resolver("ev", lambda p: pathlib.Path(p).touch() or "ran")
loader = sys.argv[2]
if loader == "torch":
    ckpt = torch.load(sys.argv[1], weights_only=False)
else:
    import ckptguard
    try:
        ckpt = ckptguard.load(sys.argv[1])
    except ckptguard.CheckpointError as exc:
        print("refused", type(exc).__name__)
        sys.exit(0)
print(ckpt["hyper_parameters"].x)
"""


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED-resolver"
    path = tmp_path / "hparams.ckpt"
    (tmp_path / "make.py").write_text(MAKE)
    (tmp_path / "app.py").write_text(APP)
    made = _python("make.py", str(path), str(marker), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    return path, marker


def test_resolver_payload_is_live_under_torch_load(tmp_path: Path, evil: tuple[Path, Path]) -> None:
    path, marker = evil
    proc = _python("app.py", str(path), "torch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_scan_load_convert_refuse_a_resolver_interpolation(
    tmp_path: Path, evil: tuple[Path, Path]
) -> None:
    path, marker = evil
    report: ckptguard.ScanReport = ckptguard.scan([path])  # type: ignore[assignment]
    assert str(report.files[0].verdict) != "safe"
    assert any(f.rule == "omegaconf-interpolation" for f in report.files[0].findings)
    proc = _python("app.py", str(path), "ckptguard", cwd=tmp_path)
    assert "refused" in proc.stdout, proc.stdout + proc.stderr
    with pytest.raises(CheckpointError):
        ckptguard.convert(path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    assert not marker.exists()


@pytest.mark.parametrize(
    "build",
    [
        hostile_red2.node_with_resolver,
        hostile_red2.node_with_nested_resolver,
        hostile_red2.node_with_built_string,
        hostile_red2.reconstructor_node_with_resolver,
        hostile_red2.rebuild_from_type_node_with_resolver,
    ],
)
def test_node_values_that_call_a_resolver_are_not_safe(
    tmp_path: Path, build: Callable[[str], bytes]
) -> None:
    path = tmp_path / "node.pkl"
    path.write_bytes(build(str(tmp_path / "m")))
    report: ckptguard.ScanReport = ckptguard.scan([path])  # type: ignore[assignment]
    assert [f.rule for f in report.files[0].findings if f.rule == "omegaconf-interpolation"]


def test_plain_references_stay_safe(tmp_path: Path) -> None:
    path = tmp_path / "ref.pkl"
    path.write_bytes(hostile_red2.node_with_plain_reference())
    report: ckptguard.ScanReport = ckptguard.scan([path])  # type: ignore[assignment]
    assert str(report.files[0].verdict) == "safe", report.files[0].findings
