"""PyTorch's modules, imported when a load needs them and typed as ``Any`` (torch is untyped)."""

from __future__ import annotations

import importlib
from typing import Any


def torch() -> Any:
    return importlib.import_module("torch")


def utils() -> Any:
    """``torch._utils``: the rebuild helpers the unpickler hands out."""
    return importlib.import_module("torch._utils")


def serialization() -> Any:
    """``torch.serialization``: location helpers and settings only (never its readers)."""
    return importlib.import_module("torch.serialization")


def guards() -> Any:
    """``torch._guards``: fake-tensor mode detection."""
    return importlib.import_module("torch._guards")
