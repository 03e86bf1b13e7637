"""``ckptguard run [--allow NAME] SCRIPT.py ARGS...``: run an application, torch.load patched."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback

from ckptguard._errors import CheckpointError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

HELP = "run a Python script or module with every torch.load going through ckptguard.load"

DESCRIPTION = """\
Run SCRIPT (or -m MODULE) as __main__ with torch.load and torch.serialization.load routed
through ckptguard.load for the whole process, until it exits: every checkpoint the
application loads, also inside Lightning, fairseq or transformers, and also from threads that
outlive the main module or from atexit handlers, is scanned and loaded only if the policy
allows it, even where the code passes weights_only=False. No code edits, no site-packages
edits.

Child Python processes are guarded too, with the same policy: multiprocessing children
(spawn, forkserver, fork) and programs started as subprocess.run([sys.executable, ...]).
run sets CKPTGUARD_GUARD (the guard, as JSON) and puts ckptguard's start-up hook first on
PYTHONPATH; see docs/load.md for process managers and the cases it cannot reach (-I, -E, -S).

--restore-types: loads of files written by `ckptguard convert` give back the original
objects (Enum members, Namespace, ...) of the types the policy allows, instead of the plain
data convert stored."""

EPILOG = """\
exit status: the application's own; 2 when a checkpoint was refused and the application did
             not handle it, or on bad usage

examples:
  ckptguard run infer-web.py --port 7865
  ckptguard run --allow fairseq.data.dictionary.Dictionary infer-web.py
  ckptguard run --allow deepafx_st.utils.DSPMode -m deepafx_st.scripts.process audio.wav
  python -m ckptguard run --policy ckptguard.toml train.py --resume last.ckpt"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--allow", action="append", default=[], metavar="MODULE.NAME",
        help="also allow this global (or package.*) in every checkpoint (repeatable)",
    )  # fmt: skip
    p.add_argument("--policy", metavar="FILE", help="policy file (TOML); see docs/policy.md")
    p.add_argument(
        "--restore-types", action="store_true",
        help="rebuild the original objects of allowed types in files written by convert",
    )  # fmt: skip
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script")
    p.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT.py ARGS",
                   help="the script to run and its arguments")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ckptguard._load import install  # noqa: PLC0415
    from ckptguard._load._children import guard_children  # noqa: PLC0415
    from ckptguard._policy import resolve_policy  # noqa: PLC0415

    target: list[str] = list(args.target)
    if target[:1] == ["--"]:
        target = target[1:]
    if args.module is None and not target:
        raise UsageError("no script to run", hint="ckptguard run SCRIPT.py [ARGS...]")
    if args.module is None and not os.path.isfile(target[0]):
        raise UsageError(f"no such script: {target[0]}", hint="ckptguard run SCRIPT.py [ARGS...]")

    # The guard stays in until the process exits: after the main module returns, Python
    # still joins the script's non-daemon threads, runs its atexit handlers and lets daemon
    # threads run, and any of them may load a checkpoint. Nothing here uninstalls it, and
    # sys.argv / sys.path stay as the script saw them (its threads may still read them).
    policy = resolve_policy(allow=args.allow, policy=args.policy)
    install(policy=policy, restore_types=args.restore_types)
    # Child Python processes (multiprocessing spawn/forkserver, subprocess.run of
    # sys.executable) start without the patch: they install the same guard (the resolved
    # policy itself, whatever their working directory) before anything can load.
    guard_children(policy, restore_types=args.restore_types)
    shown = _record_refusal_warnings()
    try:
        if args.module is not None:
            sys.argv = [args.module, *target]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            # __file__ absolute, as CPython makes it for `python script.py` (sys.argv[0]
            # stays as typed)
            script = os.path.abspath(target[0])
            sys.argv = target
            sys.path.insert(0, os.path.dirname(script))
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_status(exc.code)
    except CheckpointError as exc:
        from ckptguard._cli._output import write  # noqa: PLC0415

        if exc.diagnostics() in shown:  # the RefusedLoadWarning above said it all
            write(sys.stderr, "ckptguard: the application stopped on the refused load above\n")
        else:  # diagnostics() is terminal-safe: names and paths come from the file
            write(sys.stderr, f"ckptguard: {exc.diagnostics()}\n")
        return 2
    except Exception:  # the application's own error: show it as Python would
        traceback.print_exc()
        return 1
    return 0


def _record_refusal_warnings() -> set[str]:
    """The refusals whose RefusedLoadWarning was shown (so the final error is not repeated)."""
    import warnings  # noqa: PLC0415

    from ckptguard._load import RefusedLoadWarning  # noqa: PLC0415

    shown: set[str] = set()
    show = warnings.showwarning

    def showwarning(  # noqa: PLR0917 - warnings.showwarning's signature
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if isinstance(message, RefusedLoadWarning):
            shown.add(str(message).removeprefix(_REFUSED))
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    return shown


_REFUSED = "ckptguard refused a torch.load: "


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
