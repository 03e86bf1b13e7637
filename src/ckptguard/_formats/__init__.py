"""Read any checkpoint by content, find every pickle in it, analyse each one; fail closed.

The detection and dispatch live in :mod:`._detect`; this package only re-exports.
"""

from __future__ import annotations

from ._detect import (
    FORMATS,
    MODEL_EXTENSIONS,
    read_buffer,
    read_fd,
    read_file,
    sniff,
    sniff_head,
)
from ._extracted import Extracted, PickleStream

__all__ = [
    "FORMATS",
    "MODEL_EXTENSIONS",
    "Extracted",
    "PickleStream",
    "read_buffer",
    "read_fd",
    "read_file",
    "sniff",
    "sniff_head",
]
