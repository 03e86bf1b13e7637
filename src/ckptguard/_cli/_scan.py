"""``ckptguard scan PATH...``: report the globals each checkpoint would import, judged."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from ckptguard._results import ScanRecord

HELP = "scan checkpoints (files or directories) without executing anything"

DESCRIPTION = """\
Read each checkpoint without unpickling, importing or executing anything, and list the Python
globals its pickles would import, each judged safe / allowed / unknown / dangerous.
Directories are walked recursively. A file there is scanned when its name or its content
says it may be a checkpoint or a pickle; every other file is listed as not scanned, with the
reason (-v shows them all). A model file of a format ckptguard does not read (TensorFlow
SavedModel, Keras, ONNX, GGUF, TFLite, ...) is never passed over in silence: it makes the
scan an error, and so does a scan that found nothing to scan."""

EPILOG = """\
exit status: 0 every file is safe, 1 a file needs review or is dangerous,
             2 a file could not be scanned (missing, truncated, ambiguous, not a
               checkpoint), a model file of a format ckptguard does not read was found,
               nothing was scanned, or bad usage

examples:
  ckptguard scan model.ckpt
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
    p.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint files or directories")
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
    policy = resolve_policy(allow=args.allow, policy=args.policy, targets=args.paths)

    progress = None
    if not (args.json or args.quiet or args.no_progress or args.sarif == "-"):
        from ckptguard._cli._progress import ProgressBar  # noqa: PLC0415

        progress = ProgressBar.for_stream(sys.stderr)
    try:
        report = scan_paths(args.paths, policy=policy, jobs=args.jobs, progress=progress)
    finally:
        if progress is not None:
            progress.close()

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


def _write_sarif(report: ScanRecord, target: str) -> None:
    from ckptguard._cli._output import write_text  # noqa: PLC0415
    from ckptguard._reporters import _sarif  # noqa: PLC0415

    write_text(_sarif.dumps(report, base_dir=os.getcwd()) + "\n", target, "SARIF report")
