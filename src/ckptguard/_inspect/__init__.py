"""``ckptguard inspect``: what a checkpoint holds, described without running it."""

from __future__ import annotations

from ._describe import Inspection, best_row, inspect_dir, inspect_file, sort_rows

__all__ = ["Inspection", "best_row", "inspect_dir", "inspect_file", "sort_rows"]
