"""``ckptguard convert SRC DST`` / ``--in-place DIR``: rewrite checkpoints for weights-only use."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from ckptguard._cli._output import print_error, write_json, write_lines
from ckptguard._cli._progress import ProgressBar
from ckptguard._errors import CheckpointError, UnsafeCheckpointError, UsageError
from ckptguard._policy import resolve_policy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ckptguard._policy import Policy

HELP = "rewrite checkpoints so that stock torch.load (weights_only=True) loads them"

DESCRIPTION = """\
Rewrite SRC as DST so that torch.load(DST) with PyTorch's defaults loads it on any machine:
tensors are copied byte for byte; numpy arrays become tensors, numpy scalars numbers, other
objects (argparse.Namespace, dataclasses, Enum members, omegaconf configs, ...) plain data, and
their original types are recorded under the '__ckptguard__' key. A TorchScript archive gives
its state dict (parameters and buffers, as torch.jit.load(SRC).state_dict() keys them) without
compiling or running its code. Nothing from SRC is executed; a file with a dangerous global is
refused and nothing is written."""

EPILOG = """\
exit status: 0 converted, 1 refused (dangerous file), 2 error or bad usage

examples:
  ckptguard convert old.ckpt new.ckpt
  ckptguard convert old.ckpt model.safetensors --to safetensors
  ckptguard convert model.jit weights.pt          (TorchScript: the weights, no code run)
  ckptguard convert --in-place checkpoints/        (originals in checkpoints/.ckptguard-backup/)
  ckptguard convert ckpt/step-1000/ model.pt       (a torch.distributed.checkpoint directory)"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "convert",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="SRC DST, or DIR with --in-place")
    p.add_argument("--to", choices=("pt", "safetensors"), default="pt", help="output format")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="convert every checkpoint in DIR, keeping the originals in DIR/.ckptguard-backup/ "
        "(a directory scan does not walk it)",
    )
    p.add_argument("--force", action="store_true", help="overwrite DST (or existing backups)")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="trust this global when judging the file; repeatable",
    )
    p.add_argument("--policy", metavar="FILE", help="policy file (TOML)")
    p.add_argument(
        "--fsync", action="store_true", help="flush each new file to disk before renaming it"
    )
    p.add_argument("--json", action="store_true", help="write a JSON summary to stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policy = resolve_policy(allow=args.allow, policy=args.policy, targets=args.paths[:1])
    if args.in_place:
        if len(args.paths) != 1:
            raise UsageError(
                "--in-place takes one directory", hint="ckptguard convert --in-place checkpoints/"
            )
        with _terminate_as_interrupt():
            return _in_place(args, policy)
    if len(args.paths) != 2:
        raise UsageError("convert takes SRC and DST", hint="ckptguard convert old.pt new.pt")
    with _terminate_as_interrupt():
        return _one(args, policy)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a CI timeout) raises KeyboardInterrupt while converting, so that the
    temporary files are removed and SRC put back as for Ctrl-C (by default Python would die
    on the spot and leave them)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one(args: argparse.Namespace, policy: Policy) -> int:
    from ckptguard._convert import convert_file  # noqa: PLC0415

    src, dst = args.paths
    try:
        res = convert_file(src, dst, to=args.to, force=args.force, policy=policy, fsync=args.fsync)
    except UnsafeCheckpointError as exc:
        print_error(exc, "ckptguard: ")
        return 1
    except CheckpointError as exc:
        print_error(exc)
        return 2
    if args.json:
        write_json(_result_json(res))
    else:
        from ckptguard._convert._restore import plain_data_lines  # noqa: PLC0415

        lines = [f"converted {src} -> {dst} ({res.source_format} -> {res.to}): {res.summary()}"]
        lines += [f"  note: {note}" for note in res.notes]
        lines += plain_data_lines(dst, res.plain_types, policy)
        write_lines(sys.stdout, lines)
    return 0


def _result_json(res: object) -> dict[str, object]:
    d = asdict(res)  # type: ignore[call-overload]
    d["summary"] = res.summary()  # type: ignore[attr-defined]
    d["plain_types"] = res.plain_types  # type: ignore[attr-defined]
    return dict(d)


def _in_place(args: argparse.Namespace, policy: Policy) -> int:
    from ckptguard._convert._inplace import convert_in_place  # noqa: PLC0415

    progress = None if (args.json or args.no_progress) else ProgressBar.for_stream(sys.stderr)
    try:
        outcomes = convert_in_place(
            args.paths[0],
            policy=policy,
            force=args.force,
            progress=progress,
            fsync=args.fsync,
        )
    finally:
        if progress is not None:
            progress.close()

    if args.json:
        write_json([o.to_json() for o in outcomes])
    else:
        lines = [f"{o.status:>9}  {o.path}: {o.message}" for o in outcomes]
        counts = {
            s: sum(1 for o in outcomes if o.status == s)
            for s in ("converted", "unchanged", "refused", "error")
        }
        lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
        write_lines(sys.stdout, lines)
    if any(o.status == "error" for o in outcomes):
        return 2
    return 1 if any(o.status == "refused" for o in outcomes) else 0
