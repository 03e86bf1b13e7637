"""Checkpoints the convert tests start from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch


def source(path: Path) -> tuple[Path, dict[str, Any]]:
    """A checkpoint that needs converting, with storage records of a few KiB (copied in one
    span) and a numpy array (a new record)."""
    obj = {
        "model": {f"w{i}": torch.randn(3000 + 500 * i) for i in range(4)},
        "args": argparse.Namespace(lr=0.1),
        "step": np.int64(7),
        "hist": np.arange(2000, dtype=np.float32),
    }
    torch.save(obj, path)
    return path, obj
