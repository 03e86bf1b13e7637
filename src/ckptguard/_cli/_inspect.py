"""``ckptguard inspect PATH``: a checkpoint's structure, or a table of a directory's checkpoints."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

HELP = "show a checkpoint's structure (or list a directory's checkpoints) without executing it"

EPILOG = """\
exit status: 0 shown, 2 a file could not be read or bad usage

A directory is listed as a table sorted newest first (highest step, then epoch, then
modification time); the checkpoint with the best value of the most common metric is marked
with '*' (lower is better for loss/error-like names); --sort best orders by that metric.

examples:
  ckptguard inspect last.ckpt
  ckptguard inspect checkpoints/ --sort best
  ckptguard inspect model.pt --json
  ckptguard inspect ckpt/step-1000/     (a torch.distributed.checkpoint directory)"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "inspect",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="a checkpoint file or a directory")
    p.add_argument("--json", action="store_true", help="write one JSON document to stdout")
    p.add_argument(
        "--sort",
        choices=("newest", "best"),
        default="newest",
        help="directory table order (default: newest)",
    )
    p.add_argument("--depth", type=int, default=6, metavar="N", help="tree depth shown (6)")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="trust this global when judging the verdict; repeatable",
    )
    p.add_argument("--policy", metavar="FILE", help="policy file (TOML)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ckptguard._cli._output import write, write_json  # noqa: PLC0415
    from ckptguard._inspect._describe import best_row, inspect_dir, inspect_file  # noqa: PLC0415
    from ckptguard._policy import resolve_policy  # noqa: PLC0415

    policy = resolve_policy(allow=args.allow, policy=args.policy, targets=[args.path])
    if os.path.isdir(args.path) and os.path.lexists(os.path.join(args.path, ".metadata")):
        from ckptguard._dcp._describe import describe, render  # noqa: PLC0415 - DCP checkpoint

        dcp_doc = describe(args.path, policy)
        write_json(dcp_doc) if args.json else write(sys.stdout, render(dcp_doc))
        return 2 if dcp_doc["verdict"] == "error" else 0
    if os.path.isdir(args.path):
        rows, metric = inspect_dir(args.path, policy=policy, by=args.sort)
        best = best_row(rows, metric)
        if args.json:
            doc = {
                "directory": args.path,
                "sort": args.sort,
                "primary_metric": metric,
                "best": best.path if best else None,
                "checkpoints": [r.to_json() for r in rows],
            }
            write_json(doc)
        else:
            write(sys.stdout, _table(rows, metric, best))
        return 2 if any(r.error and r.verdict == "error" for r in rows) else 0
    if not os.path.exists(args.path):
        from ckptguard._errors import UsageError  # noqa: PLC0415

        raise UsageError(
            f"{args.path}: no such file or directory",
            hint="ckptguard inspect PATH (a checkpoint file or a directory)",
        )
    ins = inspect_file(args.path, policy=policy)
    if args.json:
        write_json(ins.to_json())
    else:
        write(sys.stdout, _render_file(ins, args.depth))
    return 2 if ins.error and ins.verdict == "error" else 0


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _render_file(ins: Any, depth: int) -> str:
    """The file's tree as terminal-safe text (keys, values and names escaped by
    :func:`~ckptguard._reporters._terminal.lines_to_text`)."""
    from ckptguard._reporters._terminal import lines_to_text  # noqa: PLC0415

    lines = [f"{ins.path}  {ins.format}  {human_bytes(ins.size)}  verdict: {ins.verdict}"]
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
        lines.append(f"  next: ckptguard scan {_quote(ins.path)}")
    elif ins.verdict == "dangerous":
        lines.append(
            f"  next: do not load this file (it tries to run code); details: ckptguard scan "
            f"{_quote(ins.path)}"
        )
    if ins.tree is not None:
        lines.append(f"  {ins.tensors} tensors, {human_bytes(ins.tensor_bytes)} of tensor data")
        _render_node(ins.tree, "", lines, "", depth)
    return lines_to_text(lines, color=False)


def _label(node: dict[str, Any]) -> str:
    t = node["type"]
    if t in ("tensor", "parameter", "quantized tensor", "sparse tensor"):
        shape = "x".join(str(d) for d in node.get("shape", [])) or "scalar"
        text = f"{t} {node.get('dtype')} [{shape}]"
        if "bytes" in node:
            text += f" {human_bytes(node['bytes'])}"
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


def _render_node(node: dict[str, Any], key: str, lines: list[str], indent: str, depth: int) -> None:
    items = node.get("items")
    if key:
        lines.append(f"{indent}{key}: {_label(node)}")
    if items is None or depth <= 0:
        return
    child = indent + "  "
    shown = items[:50]
    for it in shown:
        _render_node(it["value"], str(it["key"]), lines, child, depth - 1)
    if node["len"] > len(shown):
        lines.append(f"{child}... {node['len'] - len(shown)} more")


def _table(rows: list[Any], metric: str | None, best: Any) -> str:
    from ckptguard._reporters._terminal import escape, lines_to_text  # noqa: PLC0415

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
                human_bytes(r.size),
                "-" if r.step is None else str(r.step),
                "-" if r.epoch is None else str(r.epoch),
                m,
                r.verdict if not r.error or r.verdict != "error" else f"error: {r.error}"[:60],
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


def _quote(text: str) -> str:
    import shlex  # noqa: PLC0415

    return shlex.quote(text)
