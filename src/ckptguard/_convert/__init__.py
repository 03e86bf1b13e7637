"""``convert``: rewrite checkpoints for stock weights-only loading; ``inspect`` describes them.

Hooks for ``ckptguard.load``: :func:`read_safetensors_checkpoint` and :func:`restore_types`.
"""

from __future__ import annotations

from typing import Any

from ckptguard._convert._pipeline import ConvertResult, convert_file
from ckptguard._convert._plain import MAX_KEY_VALUES, Converter, KeySeg, Path, Paths, bounded_repr
from ckptguard._convert._restore import restore
from ckptguard._convert._safetensors import read_checkpoint
from ckptguard._convert._source import Source, open_source
from ckptguard._convert._values import FORMAT_KEY, OCall, OGlobal, OOpaque, OSet, OStorage
from ckptguard._policy import Policy

# The converter's interface for subclasses in the package (the inspect describer): the
# Converter and its hooks, the value markers it produces, lazy paths, the source reader.
__all__ = [
    "FORMAT_KEY",
    "MAX_KEY_VALUES",
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


def read_safetensors_checkpoint(path: str, map_location: Any = None) -> object:
    """Rebuild the nested structure of a safetensors file written by ``convert --to
    safetensors``; a plain safetensors file comes back as a dict name -> tensor."""

    return read_checkpoint(path, map_location)


def restore_types(obj: object, *, policy: Policy) -> object:
    """Rebuild the originals recorded in a converted checkpoint's ``__ckptguard__`` entry,
    for the types ``policy`` classifies safe or allowed; the rest stay plain data."""

    return restore(obj, policy=policy)
