"""``ckptguard scan PATH...``: report the globals each checkpoint would import, judged."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from ckptguard._remote import RemoteOptions
    from ckptguard._results import ScanRecord

HELP = "scan checkpoints (files or directories) without executing anything"

DESCRIPTION = """\
Read each checkpoint without unpickling, importing or executing anything, and list the Python
globals its pickles would import, each judged safe / allowed / unknown / dangerous.
Directories are walked recursively. A file there is scanned when its name or its content
says it may be a checkpoint or a pickle; every other file is listed as not scanned, with the
reason (-v shows them all). A model file of a format ckptguard does not read (TensorFlow
SavedModel, Keras, ONNX, GGUF, TFLite, ...) is never passed over in silence: it makes the
scan an error, and so does a scan that found nothing to scan.
URLs (s3://, gs://, az://, hf://, https://, any fsspec protocol) are read by byte ranges: the
zip directory and the pickles, never tensor data; prefixes are listed recursively. Each file
entry of --json says how many bytes were read ("bytes_read"); the summary gives the total."""

EPILOG = """\
exit status: 0 every file is safe, 1 a file needs review or is dangerous,
             2 a file could not be scanned (missing, truncated, ambiguous, not a
               checkpoint), a model file of a format ckptguard does not read was found,
               nothing was scanned, or bad usage

examples:
  ckptguard scan model.ckpt
  ckptguard scan s3://bucket/models/ --include '*.pt' --exclude 'old/*'
  ckptguard scan https://host/model.pt --dask tcp://scheduler:8786
  ckptguard scan checkpoints/ --allow deepafx_st.utils.DSPMode
  ckptguard scan checkpoints/ --json > report.json
  ckptguard scan checkpoints/ --sarif ckptguard.sarif
  ckptguard scan ckpt/step-1000/        (a torch.distributed.checkpoint directory: one unit)"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH|URL",
        help="checkpoint files or directories, or URLs of remote objects or prefixes "
        "(s3://bucket/models/, https://host/model.pt, any fsspec protocol; needs "
        "pip install 'ckptguard[remote]'): read by byte ranges, never downloaded whole",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help=(
            "trust this global (e.g. mypkg.utils.MyEnum, or mypkg.utils.* for the names that "
            "one module of your own defines); repeatable"
        ),
    )
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="policy file (TOML); default: $CKPTGUARD_POLICY or [tool.ckptguard] in the "
        "nearest pyproject.toml",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="write one JSON document to stdout (indented on a terminal, else one line)",
    )
    p.add_argument(
        "--sarif", metavar="FILE", help="also write a SARIF 2.1.0 report to FILE ('-': stdout)"
    )
    p.add_argument("--jobs", "-j", type=_positive_int, metavar="N", help="scan N files in parallel")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="under a remote prefix, scan only objects whose path below the prefix (or, for a "
        "glob without '/', whose name) matches; repeatable",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="under a remote prefix, skip objects that match (as --include); repeatable",
    )
    p.add_argument(
        "--dask",
        metavar="SCHEDULER_ADDRESS",
        help="scan the URLs as tasks on this Dask cluster (e.g. tcp://10.0.0.5:8786; needs "
        "pip install 'ckptguard[dask]' here and 'ckptguard[remote]' on the workers)",
    )
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="also list safe globals and info findings"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="print only files that are not safe"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ckptguard._errors import UsageError  # noqa: PLC0415
    from ckptguard._policy import resolve_policy  # noqa: PLC0415
    from ckptguard._scan import scan_paths  # noqa: PLC0415

    if args.json and args.sarif == "-":
        raise UsageError(
            "--json and --sarif - both write to stdout",
            hint="write the SARIF report to a file: --sarif ckptguard.sarif",
        )
    local = [p for p in args.paths if "://" not in p]
    policy = resolve_policy(allow=args.allow, policy=args.policy, targets=local)

    progress = None
    if not (args.json or args.quiet or args.no_progress or args.sarif == "-"):
        from ckptguard._cli._progress import ProgressBar  # noqa: PLC0415

        progress = ProgressBar.for_stream(sys.stderr)
    remote, client = _remote_setup(args)
    try:
        if remote is None:
            report = scan_paths(args.paths, policy=policy, jobs=args.jobs, progress=progress)
        else:  # URLs: read by byte ranges (imported only then)
            from ckptguard._remote import scan_with_local  # noqa: PLC0415

            report = scan_with_local(args.paths, policy, args.jobs, progress, remote, client)
    finally:
        if progress is not None:
            progress.close()
        if client is not None:
            client.close()

    if args.sarif:
        _write_sarif(report, args.sarif)
    if args.json:
        from ckptguard._reporters import _json  # noqa: PLC0415

        # indented for a person at a terminal, one compact line for programs (faster)
        sys.stdout.write(_json.dumps(report, indent=2 if sys.stdout.isatty() else None))
        sys.stdout.write("\n")
    elif args.sarif != "-":
        from ckptguard._reporters import _human  # noqa: PLC0415

        text = _human.render(
            report,
            verbose=args.verbose,
            quiet=args.quiet,
            color=_human.use_color(sys.stdout),
        )
        sys.stdout.write(text)
    return report.exit_code


def _remote_setup(args: argparse.Namespace) -> tuple[RemoteOptions | None, Any]:
    """The remote scan's options and, with --dask, a client of that cluster."""
    from ckptguard._errors import UsageError  # noqa: PLC0415

    urls = [p for p in args.paths if "://" in p]
    if not urls:
        if args.dask or args.include or args.exclude:
            raise UsageError(
                "--dask, --include and --exclude apply to URLs, and no URL was given",
                hint="ckptguard scan s3://bucket/models/ --include '*.pt'",
            )
        return None, None
    from ckptguard._remote import RemoteOptions  # noqa: PLC0415

    opts = RemoteOptions(
        concurrency=args.jobs or 8, include=tuple(args.include), exclude=tuple(args.exclude)
    )
    if not args.dask:
        return opts, None
    try:
        from distributed import Client  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "--dask needs the distributed package", hint="pip install 'ckptguard[dask]'"
        ) from None
    try:
        client = Client(args.dask, timeout=30)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise UsageError(
            f"cannot reach the Dask scheduler at {args.dask}: {exc}",
            hint="check the address (tcp://HOST:8786) and that the scheduler is running",
        ) from None
    return opts, client


def _write_sarif(report: ScanRecord, target: str) -> None:
    from ckptguard._cli._output import write_text  # noqa: PLC0415
    from ckptguard._reporters import _sarif  # noqa: PLC0415

    write_text(_sarif.dumps(report, base_dir=os.getcwd()) + "\n", target, "SARIF report")
