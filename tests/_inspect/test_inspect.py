"""inspect: structure and metadata without reading tensor data or executing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ckptguard import inspect
from ckptguard._inspect._describe import Inspection, best_row, inspect_dir, sort_rows
from ckptguard._policy import default_policy
from tests import factories as F
from tests.pickleasm import system


def _find(tree: dict, *keys: str) -> dict:
    node = tree
    for k in keys:
        node = next(it["value"] for it in node["items"] if it["key"] == k)
    return node


def test_tree_shows_tensors_and_scalars_without_reading_tensor_data(tmp_path: Path) -> None:
    path = F.training_checkpoint(tmp_path / "t.pt")
    ins = inspect(path)
    assert isinstance(ins, Inspection) and ins.tree is not None
    w = _find(ins.tree, "model", "4.weight")
    assert w == {
        "type": "tensor",
        "dtype": "float32",
        "shape": [5, 144],
        "bytes": 5 * 144 * 4,
        "storage": w["storage"],
    }
    assert _find(ins.tree, "step") == {"type": "int", "value": 120, "original_type": "numpy.int64"}
    assert ins.step == 120 and ins.epoch == 3
    assert ins.metrics == {"val_loss": 0.25, "best_acc": pytest.approx(0.9)}
    hist = _find(ins.tree, "history")
    assert hist["dtype"] == "float32" and hist["original_type"] == "numpy.ndarray"


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """Zeroing every storage record does not change what inspect reports."""
    import zipfile

    src = F.training_checkpoint(tmp_path / "t.pt")
    before = inspect(src)
    dst = tmp_path / "zeroed.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if "/data/" in info.filename:
                data = bytes(len(data))
            zout.writestr(info.filename, data)
    after = inspect(dst)
    assert isinstance(before, Inspection) and isinstance(after, Inspection)
    assert before.tree == after.tree


def test_exotic_tensors_are_described(tmp_path: Path) -> None:
    torch.save(
        {
            "f8": torch.zeros(3).to(torch.float8_e4m3fn),
            "p": torch.nn.Parameter(torch.zeros(2, 2)),
            "sp": torch.eye(3).to_sparse(),
            "bf": torch.zeros(4, dtype=torch.bfloat16),
        },
        tmp_path / "x.pt",
    )
    ins = inspect(tmp_path / "x.pt")
    assert isinstance(ins, Inspection) and ins.tree is not None
    assert _find(ins.tree, "f8")["dtype"] == "float8_e4m3fn"
    assert _find(ins.tree, "p")["type"] == "parameter"
    assert _find(ins.tree, "sp")["type"] == "sparse tensor"
    assert _find(ins.tree, "sp")["shape"] == [3, 3]
    assert _find(ins.tree, "bf") == {
        "type": "tensor",
        "dtype": "bfloat16",
        "shape": [4],
        "bytes": 8,
        "storage": _find(ins.tree, "bf")["storage"],
    }


def test_dangerous_file_is_inspected_statically(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    path.write_bytes(system(f"touch {marker}"))
    ins = inspect(path)
    assert isinstance(ins, Inspection)
    assert ins.verdict == "dangerous"
    assert ins.tree == {"type": "opaque", "what": "a call of os.system (dangerous)"}
    assert not marker.exists()


def test_broken_file_reports_an_error(tmp_path: Path) -> None:
    (tmp_path / "cut.pt").write_bytes(F.state_dict(tmp_path / "ok.pt").read_bytes()[:100])
    ins = inspect(tmp_path / "cut.pt")
    assert isinstance(ins, Inspection) and ins.verdict == "error" and ins.error


def _save(path: Path, step: int, epoch: int, val_loss: float, mtime: float) -> None:
    torch.save(
        {
            "model": {"w": torch.zeros(1)},
            "step": step,
            "epoch": epoch,
            "metrics": {"val_loss": val_loss},
        },
        path,
    )
    os.utime(path, (mtime, mtime))


def test_directory_table_newest_first_and_best_marked(tmp_path: Path) -> None:
    _save(tmp_path / "a.pt", 100, 1, 0.5, 1000)
    _save(tmp_path / "b.pt", 300, 3, 0.7, 900)
    _save(tmp_path / "c.pt", 200, 2, 0.2, 2000)
    rows, metric = inspect_dir(tmp_path, policy=default_policy())
    assert [Path(r.path).name for r in rows] == ["b.pt", "c.pt", "a.pt"]
    assert metric == "val_loss"
    best = best_row(rows, metric)
    assert best is not None and Path(best.path).name == "c.pt"
    by_best, _ = sort_rows(rows, by="best")
    assert [Path(r.path).name for r in by_best] == ["c.pt", "a.pt", "b.pt"]


def test_higher_is_better_for_accuracy_like_metrics() -> None:
    rows = [
        Inspection(str(i), "pytorch-zip", 1, "safe", metrics={"val_acc": v})
        for i, v in enumerate([0.5, 0.9, 0.7])
    ]
    best = best_row(rows, "val_acc")
    assert best is not None and best.path == "1"
    ordered, _ = sort_rows(rows, by="best")
    assert [r.path for r in ordered] == ["1", "2", "0"]
