"""The DCP part of ``patched()`` / ``install()`` / ``ckptguard run``.

While the window is open, ``torch.distributed.checkpoint.FileSystemReader``'s
``read_metadata``, ``set_up_storage_reader`` and ``read_data`` are replaced by ckptguard's
(:mod:`._reader`), with the policy of the calling thread's innermost block: ``dcp.load`` with a
path, a ``FileSystemReader`` made by user code, and ``format_utils.dcp_to_torch_save`` all scan
the checkpoint first and unpickle only what it approved. The originals come back when the
window closes.

:mod:`ckptguard._load._patch` imports this module (one way): the policy comes from
:mod:`ckptguard._load._window`, and the ``patched`` that routes the planner's own
``torch.load`` of bytes items is handed to :func:`open_guard`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ckptguard._load._window import current_policy
from ckptguard._policy import Policy

_NAMES = ("read_metadata", "set_up_storage_reader", "read_data")
_saved: dict[str, Any] = {}
# ``patched``, handed over by open_guard: routes the planner's torch.load of bytes items
_routed: list[Callable[..., AbstractContextManager[None]]] = []


def _policy() -> Policy:
    return current_policy()


def _read_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
    from ._reader import read_metadata  # noqa: PLC0415

    return read_metadata(self, _policy(), kwargs)


def _set_up_storage_reader(
    self: Any, metadata: Any, is_coordinator: bool, *args: Any, **kwargs: Any
) -> Any:
    from ._reader import check_storage_data  # noqa: PLC0415

    check_storage_data(self, _policy(), metadata)
    return _saved["set_up_storage_reader"](self, metadata, is_coordinator, *args, **kwargs)


def _read_data(self: Any, plan: Any, planner: Any) -> Any:
    from ._reader import read_data  # noqa: PLC0415

    return read_data(self, _policy(), plan, planner, _routed[0])


_GUARDS: dict[str, Any] = {
    "read_metadata": _read_metadata,
    "set_up_storage_reader": _set_up_storage_reader,
    "read_data": _read_data,
}


def open_guard(routed: Callable[..., AbstractContextManager[None]]) -> None:
    """Route ``FileSystemReader`` through ckptguard (called with the patch lock held).

    ``routed(policy=...)``: a block in which ``torch.load`` goes through ckptguard (``patched``).
    """
    _routed[:] = [routed]
    if _saved:
        return
    try:
        import torch.distributed  # noqa: PLC0415

        if not torch.distributed.is_available():
            return
        from torch.distributed.checkpoint.filesystem import FileSystemReader  # noqa: PLC0415
    except ImportError:  # pragma: no cover - torch built without distributed
        return
    for name in _NAMES:
        _saved[name] = FileSystemReader.__dict__[name]
        setattr(FileSystemReader, name, _GUARDS[name])


def close_guard() -> None:
    """Put the original methods back (called with the patch lock held)."""
    if not _saved:
        return
    from torch.distributed.checkpoint.filesystem import FileSystemReader  # noqa: PLC0415

    for name, fn in _saved.items():
        if FileSystemReader.__dict__.get(name) is _GUARDS[name]:
            setattr(FileSystemReader, name, fn)
    _saved.clear()
