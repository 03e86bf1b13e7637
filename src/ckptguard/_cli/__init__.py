"""The ckptguard command line: the only place that prints and picks exit codes.

Each subcommand lives in its own module (``_scan``, later ``_load``, ``_convert``, ...) with two
functions: ``add_parser(subparsers)`` and ``run(args) -> int``. Nothing heavy is imported at
module level (start-up time matters: the CLI is compared against other scanners as a whole
process); subcommands import the scanner and the reporters only when they run.

Exit status: 0 all files safe, 1 something needs review or is dangerous, 2 errors and bad usage.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Collection, Sequence

from ckptguard._cli._argparse import Parser
from ckptguard._errors import Error

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EXIT_ERROR", "EXIT_FINDINGS", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

# Each lives in ckptguard._cli._<name>, imported only when the command line needs it.
_SUBCOMMANDS = ("scan", "run", "convert", "inspect", "code")


def _version() -> str:
    from ckptguard import __version__  # noqa: PLC0415

    return __version__


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser. With ``full`` (subcommand names), only those are built, which keeps
    start-up short: ``main`` builds just the one the command line names. When ``full`` is
    empty or names no known subcommand (help, a typo), the others are listed by name and help
    so that the usage and error messages still show every command."""
    parser = Parser(
        prog="ckptguard",
        description=(
            "Scan PyTorch checkpoints without executing anything (which Python globals their "
            "pickles would import, and whether each is safe), and load them safely."
        ),
        epilog="Exit status: 0 all safe, 1 review or dangerous, 2 error or bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"ckptguard {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    list_all = not full or not set(full) <= set(_SUBCOMMANDS)  # help, or an error listing all
    for name in _SUBCOMMANDS:
        if full is None or name in full:
            _module(name).add_parser(sub)
        elif list_all:
            sub.add_parser(name, help=_module(name).HELP)
    return parser


def _module(name: str) -> Any:
    return importlib.import_module(f"ckptguard._cli._{name}")


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the top level has no options with values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (the console script passes it to sys.exit)."""
    if argv is None:
        argv = sys.argv[1:]
    _never_fail_to_encode()
    command = _command(argv)
    parser = build_parser(full=() if command is None else (command,))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help/--version exit 0, usage errors exit 2
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    # What exists now (modules, the parser) outlives the command: keep the cyclic GC from
    # walking it again at every full collection (a scan of many files allocates enough to
    # trigger several). Undone afterwards, for callers of main() that live on (tests).
    gc.freeze()
    try:
        code: int = args.run(args)
    except Error as exc:  # PolicyError, UsageError, ...: a message, never a traceback
        from ckptguard._cli._output import print_error  # noqa: PLC0415

        print_error(exc)  # escaped: problems quote names and paths from files
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ckptguard: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except Exception as exc:  # a bug in ckptguard: fail closed, without a wall of traceback
        import os  # noqa: PLC0415

        if os.environ.get("CKPTGUARD_DEBUG"):
            raise
        from ckptguard._cli._output import write_lines  # noqa: PLC0415

        write_lines(
            sys.stderr,
            [
                f"ckptguard: internal error: {type(exc).__name__}: {exc}",
                "  this is a bug in ckptguard; please report it "
                "(set CKPTGUARD_DEBUG=1 to see the traceback)",
            ],
        )
        return EXIT_ERROR
    finally:
        gc.unfreeze()
    _flush_stdout()
    return code


def _never_fail_to_encode() -> None:
    """See :func:`ckptguard._cli._output.escape_unencodable` (a latin-1 or ASCII locale)."""
    from ckptguard._cli._output import escape_unencodable  # noqa: PLC0415

    escape_unencodable(sys.stdout)
    escape_unencodable(sys.stderr)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `ckptguard scan ... | head`: not our error
        _silence_stdout()


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at devnull so that flush cannot fail.
    import os  # noqa: PLC0415

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
