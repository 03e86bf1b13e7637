"""``ckptguard inspect``: what a checkpoint holds, described without running it.

``_inspection`` the report (:class:`Inspection`, frozen); ``_describer`` the describer (a
converter subclass) and its tree; ``_headers`` files described from their headers
(safetensors, numpy, TorchScript); ``_describe`` the entry points (one file, a directory);
``_render`` the human text.
"""

from __future__ import annotations

from ._describe import best_row, inspect_dir, inspect_file, sort_rows
from ._inspection import Inspection
from ._render import render_file, render_table

__all__ = [
    "Inspection",
    "best_row",
    "inspect_dir",
    "inspect_file",
    "render_file",
    "render_table",
    "sort_rows",
]
