"""The human text of ``ckptguard inspect``: a file's tree, or a directory's table.

Sizes use the units of ``ckptguard scan`` (B, KiB, MiB, GiB: one formatter,
:func:`ckptguard._reporters._human.format_size`). Long containers are collapsed unless
``full``: a list, tuple or set shows its first :data:`SHOWN_ITEMS` items and a dict its first
:data:`SHOWN_ENTRIES` entries, then ``... N more (--full shows all)``; a list of plain numbers
is shown on one line. Every line is escaped for the terminal in one place
(:func:`ckptguard._reporters._terminal.lines_to_text`).
"""

from __future__ import annotations

import shlex
from typing import Any

from ckptguard._reporters._human import format_size
from ckptguard._reporters._terminal import escape, lines_to_text
from ckptguard._verdict import FileVerdict

from ._inspection import Inspection

SHOWN_ITEMS = 5  # items of a list, tuple or set shown unless --full
SHOWN_ENTRIES = 20  # entries of a dict shown unless --full
INLINE_NUMBERS = 8  # plain numbers of a list shown on its one line unless --full
_TENSORS = ("tensor", "parameter", "quantized tensor", "sparse tensor", "array", "object array")
_SEQUENCES = ("list", "tuple", "set")


def human_size(n: int | None) -> str:
    return format_size(n) or "?"


def render_file(ins: Inspection, depth: int = 6, *, full: bool = False) -> str:
    """The file's tree as terminal-safe text."""
    q = shlex.quote(ins.path)
    lines = [f"{ins.path}  {ins.format}  {human_size(ins.size)}  verdict: {ins.verdict.value}"]
    meta = []
    if ins.step is not None:
        meta.append(f"step {ins.step}")
    if ins.epoch is not None:
        meta.append(f"epoch {ins.epoch}")
    meta += [f"{k} {v:.6g}" for k, v in ins.metrics.items()]
    if meta:
        lines.append("  " + ", ".join(meta))
    if ins.error:
        lines.append(f"  error: {ins.error}")
        lines.append(f"  next: ckptguard scan {q}")
    elif ins.verdict is FileVerdict.DANGEROUS:
        lines.append(
            f"  next: do not load this file (it tries to run code); details: ckptguard scan {q}"
        )
    if ins.tree is not None:
        lines.append(f"  {ins.tensors} tensors, {human_size(ins.tensor_bytes)} of tensor data")
        tree = ins.tree
        if tree["type"] == "torchscript":
            lines.append(f"  {tree['what']}")
            lines.append(
                f"  {tree['storages']} storage records, {human_size(tree['storage_bytes'])}"
            )
        _render_node(tree, "", lines, "", depth, full=full)
    return lines_to_text(lines, color=False)


def _label(node: dict[str, Any]) -> str:
    t = node["type"]
    if t in _TENSORS:
        shape = "x".join(str(d) for d in node.get("shape", [])) or "scalar"
        text = f"{t} {node.get('dtype')} [{shape}]"
        if "bytes" in node:
            text += f" {human_size(node['bytes'])}"
    elif "value" in node:
        text = repr(node["value"]) if t == "str" else str(node["value"])
        if len(text) > 80:
            text = text[:77] + "..."
    elif "len" in node:
        text = f"{t} ({node['len']})"
    elif t == "object":
        text = f"object {node['class']}"
    else:
        text = f"{t} {node.get('what', '')}".strip()
    if "original_type" in node:
        text += f"  (was {node['original_type']})"
    return text


def _inline_numbers(node: dict[str, Any]) -> str | None:
    """``[0.1, 0.2, ... 98 more]`` for a list or tuple of plain numbers (None otherwise)."""
    items = node.get("items")
    if node["type"] not in _SEQUENCES or not items:
        return None
    values = [it["value"] for it in items]
    if not all(v["type"] in ("int", "float", "bool") and len(v) == 2 for v in values):
        return None
    shown = ", ".join(
        f"{v['value']:.6g}" if type(v["value"]) is float else str(v["value"])
        for v in values[:INLINE_NUMBERS]
    )
    more = node["len"] - min(len(values), INLINE_NUMBERS)
    return f"{node['type']} ({node['len']}) [{shown}{f', ... {more} more' if more else ''}]"


def _render_node(
    node: dict[str, Any], key: str, lines: list[str], indent: str, depth: int, *, full: bool
) -> None:
    items = node.get("items")
    inline = None if full else _inline_numbers(node)
    if key:
        lines.append(f"{indent}{key}: {inline or _label(node)}")
    elif items is None:  # a root that is not a container
        lines.append(f"  {_label(node)}")
    if items is None or depth <= 0 or inline is not None:
        return
    child = indent + "  "
    limit = SHOWN_ITEMS if node["type"] in _SEQUENCES else SHOWN_ENTRIES
    if full:
        limit = len(items)
    shown = items[:limit]
    for it in shown:
        _render_node(it["value"], str(it["key"]), lines, child, depth - 1, full=full)
    more = node["len"] - len(shown)
    if more:
        hint = "" if full else " (--full shows all)"
        lines.append(f"{child}... {more} more{hint}")


def render_table(rows: list[Inspection], metric: str | None, best: Inspection | None) -> str:
    """A directory's checkpoints, one row each (terminal-safe)."""
    head = ["", "path", "format", "size", "step", "epoch", metric or "metrics", "verdict"]
    body = []
    for r in rows:
        if metric is not None:
            m = f"{r.metrics[metric]:.6g}" if metric in r.metrics else "-"
        else:
            m = ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()) or "-"
        body.append(
            [
                "*" if r is best else "",
                r.path,
                r.format,
                human_size(r.size),
                "-" if r.step is None else str(r.step),
                "-" if r.epoch is None else str(r.epoch),
                m,
                f"error: {r.error}"[:60] if r.failed else r.verdict.value,
            ]
        )
    head = [escape(c) for c in head]  # escaped before the widths are taken (metric: a key)
    body = [[escape(c) for c in row] for row in body]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *body]
    ]
    if not body:
        out.append("(no checkpoints)")
    return lines_to_text(out, color=False)
