"""``convert``: rewrite checkpoints for stock weights-only loading; ``inspect`` describes them.

Hooks for ``ckptguard.load``: :func:`read_safetensors_checkpoint` and :func:`restore_types`.
:func:`convert_file` is the entry point: a DCP checkpoint goes to :mod:`ckptguard._dcp._convert`,
a file to :mod:`._pipeline` (which never dispatches, so ``_dcp._convert`` can use it).
"""

from __future__ import annotations

from typing import Any

from ckptguard._convert import _pipeline
from ckptguard._convert._pipeline import ConvertResult, check_target
from ckptguard._convert._plain import (
    MAX_KEY_VALUES,
    NUMPY_NAMES,
    Converter,
    KeySeg,
    Path,
    Paths,
    bounded_repr,
)
from ckptguard._convert._restore import restore
from ckptguard._convert._safetensors import read_checkpoint
from ckptguard._convert._source import Source, open_source
from ckptguard._convert._values import FORMAT_KEY, OCall, OGlobal, OOpaque, OSet, OStorage
from ckptguard._gc import gc_paused
from ckptguard._policy import Policy
from ckptguard._scan import _dcp_target

# The converter's interface for subclasses in the package (the inspect describer): the
# Converter and its hooks, the value markers it produces, lazy paths, the source reader.
__all__ = [
    "FORMAT_KEY",
    "MAX_KEY_VALUES",
    "NUMPY_NAMES",
    "ConvertResult",
    "Converter",
    "KeySeg",
    "OCall",
    "OGlobal",
    "OOpaque",
    "OSet",
    "OStorage",
    "Path",
    "Paths",
    "Source",
    "bounded_repr",
    "convert_file",
    "open_source",
    "read_safetensors_checkpoint",
    "restore_types",
]


def convert_file(
    src_path: str,
    dst_path: str,
    *,
    to: str = "pt",
    force: bool = False,
    policy: Policy,
    backup: str | None = None,
    fsync: bool = False,
) -> ConvertResult:
    """Convert one file or DCP checkpoint (see :func:`ckptguard.convert`). ``backup``:
    in-place mode, rename SRC to this path before DST (== SRC) replaces it."""
    check_target(src_path, dst_path, to)
    if _dcp_target(src_path):  # a torch.distributed.checkpoint directory (ckptguard._dcp)
        # imported here: _dcp._convert reads through ckptguard._load, whose _safe_load imports
        # this package's _restore (an import at the top would start that circle)
        from ckptguard._dcp._convert import convert_dcp  # noqa: PLC0415

        with gc_paused():
            result: ConvertResult = convert_dcp(
                src_path, dst_path, to=to, force=force, policy=policy, fsync=fsync
            )
        return result
    return _pipeline.convert_file(
        src_path, dst_path, to=to, force=force, policy=policy, backup=backup, fsync=fsync
    )


def read_safetensors_checkpoint(path: str, map_location: Any = None) -> object:
    """Rebuild the nested structure of a safetensors file written by ``convert --to
    safetensors``; a plain safetensors file comes back as a dict name -> tensor."""

    return read_checkpoint(path, map_location)


def restore_types(obj: object, *, policy: Policy) -> object:
    """Rebuild the originals recorded in a converted checkpoint's ``__ckptguard__`` entry,
    for the types ``policy`` classifies safe or allowed; the rest stay plain data."""

    return restore(obj, policy=policy)
