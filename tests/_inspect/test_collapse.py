"""inspect collapses long lists and dicts by default; --full shows every item (issue 12
item 4: 160-200 lines for a 7 KB file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests.subproc import ENV


def _inspect(*args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "ckptguard", "inspect", *args],
        capture_output=True, text=True, env=ENV, timeout=120, check=True,
    )  # fmt: skip
    return p.stdout


def _small_training_file(path: Path) -> Path:
    torch.save(
        {
            "epoch": 3,
            "loss_history": [0.5 / (i + 1) for i in range(150)],
            "lr_steps": list(range(0, 1000, 10)),
            "optimizer": {"param_groups": [{"params": list(range(40)), "lr": 0.1}]},
            "layers": [{"w": torch.zeros(2), "name": f"l{i}"} for i in range(30)],
            "vocab": {f"tok{i}": i for i in range(120)},
        },
        path,
    )
    return path


def test_a_small_file_prints_a_short_tree_by_default(tmp_path: Path) -> None:
    path = _small_training_file(tmp_path / "t.pt")
    assert path.stat().st_size < 16_000
    full = _inspect(str(path), "--full")
    out = _inspect(str(path))
    assert len(full.splitlines()) > 300
    assert len(out.splitlines()) <= 50, out
    assert "loss_history: list (150) [0.5, 0.25, 0.166667, " in out and "... 142 more]" in out
    assert "... 25 more (--full shows all)" in out  # layers: 5 of 30 shown
    assert "... 100 more (--full shows all)" in out  # vocab: 20 of 120 entries shown
    assert "tok119: 119" in full and "tok119" not in out
    assert "more (--full shows all)" not in full


def test_help_documents_full() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "ckptguard", "inspect", "--help"],
        capture_output=True, text=True, env=ENV, timeout=60, check=True,
    )  # fmt: skip
    assert "--full" in p.stdout and "... N more" in p.stdout
