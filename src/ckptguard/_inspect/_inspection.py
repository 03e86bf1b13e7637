"""What ``inspect`` reports for one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptguard._verdict import FileVerdict


@dataclass(frozen=True)
class Inspection:
    """What ``inspect`` found in one file (``to_json()`` is the ``--json`` document).

    ``tree`` is the described structure (nodes ``{"type": ..., ...}``; see docs/convert.md),
    ``None`` when the file could not be read (``error``) or in a directory listing.
    """

    path: str
    format: str
    size: int | None
    verdict: FileVerdict
    mtime: float | None = None
    tree: dict[str, Any] | None = None
    step: int | None = None
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tensors: int = 0
    tensor_bytes: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        """The file could not be read (the CLI's exit status 2)."""
        return self.error is not None and self.verdict is FileVerdict.ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "verdict": self.verdict.value,
            "step": self.step,
            "epoch": self.epoch,
            "metrics": dict(self.metrics),
            "tensors": self.tensors,
            "tensor_bytes": self.tensor_bytes,
            "error": self.error,
            "tree": self.tree,
        }
