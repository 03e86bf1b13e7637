"""Deep equality for loaded checkpoints: tensors bit-identical, numpy values exact, types kept."""

from __future__ import annotations

import enum
import types
from typing import Any

import numpy as np
import torch


def _tensor_equal(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, where
    assert a.layout == b.layout, where
    if a.layout is torch.strided:
        assert a.stride() == b.stride(), where
        assert a.storage_offset() == b.storage_offset(), where
        assert a.untyped_storage().nbytes() == b.untyped_storage().nbytes(), where
        assert _storage_bytes(a) == _storage_bytes(b), where
    else:
        assert torch.equal(a.to_dense(), b.to_dense()), where
    assert a.requires_grad == b.requires_grad, where


def _storage_bytes(t: torch.Tensor) -> bytes:
    """The bytes of a tensor's whole storage (``bytes(storage)`` goes byte by byte: slow)."""
    storage = t.untyped_storage()
    if t.device.type != "cpu":
        return bytes(storage)
    flat = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (storage.nbytes(),), (1,))
    return bytes(flat.numpy().tobytes())


def assert_same(a: Any, b: Any, where: str = "root", _seen: set[int] | None = None) -> None:
    """``a`` (loaded by ckptguard) equals ``b`` (loaded by the unsafe loader), recursively.

    Cycles (omegaconf parents) are followed once; classes and functions must be identical.
    """
    seen = set() if _seen is None else _seen
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if id(a) in seen:
        return
    if isinstance(a, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)):
        assert a is b, where
        return
    if isinstance(a, (dict, list, tuple)) or hasattr(a, "__dict__"):
        seen.add(id(a))
    if isinstance(a, torch.Tensor):
        _tensor_equal(a, b, where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]", seen)
        if hasattr(a, "__dict__"):
            assert_same(vars(a), vars(b), f"{where}.__dict__", seen)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]", seen)
    elif isinstance(a, enum.Enum) or a is None or isinstance(a, (int, float, str, bytes, bool)):
        assert a == b, f"{where}: {a!r} vs {b!r}"
    elif hasattr(a, "__dict__"):
        assert_same(vars(a), vars(b), f"{where}.__dict__", seen)
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())
