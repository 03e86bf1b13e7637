"""``ckptguard inspect PATH``: a checkpoint's structure, or a table of a directory's checkpoints."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "show a checkpoint's structure (or list a directory's checkpoints) without executing it"

EPILOG = """\
exit status: 0 shown, 2 a file could not be read or bad usage

Pickled checkpoints (torch zip, legacy torch, pickle) are shown as a tree of keys, tensors
(dtype [shape] size) and values; safetensors files from their header (names, dtypes, shapes,
sizes, __metadata__); .npy/.npz files array by array; TorchScript archives as code that only
torch.jit.load runs, with their parameters and buffers when the data pickle reads as data.
Long lists and dicts are cut ("... N more"); --full shows everything. Sizes in B/KiB/MiB/GiB
as in scan. Nothing is executed and no tensor data is read.

A directory is listed as a table sorted newest first (highest step, then epoch, then
modification time); the checkpoint with the best value of the most common metric is marked
with '*' (lower is better for loss/error-like names); --sort best orders by that metric.

examples:
  ckptguard inspect last.ckpt
  ckptguard inspect checkpoints/ --sort best
  ckptguard inspect model.pt --json
  ckptguard inspect model.safetensors --full
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
        "--full",
        action="store_true",
        help="show every item of long lists and dicts (default: the first 5 items of a "
        "list/tuple/set, the first 20 entries of a dict, then '... N more'; lists of numbers "
        "on one line)",
    )
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
    from ckptguard._inspect import (  # noqa: PLC0415
        best_row,
        inspect_dir,
        inspect_file,
        render_file,
        render_table,
    )
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
            write(sys.stdout, render_table(rows, metric, best))
        return 2 if any(r.failed for r in rows) else 0
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
        write(sys.stdout, render_file(ins, args.depth, full=args.full))
    return 2 if ins.failed else 0
