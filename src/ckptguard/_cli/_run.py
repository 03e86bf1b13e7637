"""``ckptguard run [--allow NAME] SCRIPT.py ARGS...``: run an application, torch.load patched."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback

from ckptguard._cli._output import print_error
from ckptguard._errors import CheckpointError, UsageError

HELP = "run a Python script or module with every torch.load going through ckptguard.load"

DESCRIPTION = """\
Run SCRIPT (or -m MODULE) as __main__ with torch.load and torch.serialization.load routed
through ckptguard.load for the whole process, until it exits: every checkpoint the
application loads, also inside Lightning, fairseq or transformers, and also from threads that
outlive the main module or from atexit handlers, is scanned and loaded only if the policy
allows it, even where the code passes weights_only=False. No code edits, no site-packages
edits."""

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
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script")
    p.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT.py ARGS",
                   help="the script to run and its arguments")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ckptguard._load import install  # noqa: PLC0415
    from ckptguard._load._children import guard_children  # noqa: PLC0415

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
    install(allow=args.allow, policy=args.policy)
    # Processes multiprocessing spawns (or forks from a forkserver) start without the patch:
    # they install the same guard before running anything.
    guard_children(args.allow, args.policy)
    try:
        if args.module is not None:
            sys.argv = [args.module, *target]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            script = target[0]
            sys.argv = target
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_status(exc.code)
    except CheckpointError as exc:
        print_error(exc, "ckptguard: ")  # escaped: names and paths come from the file
        return 2
    except Exception:  # the application's own error: show it as Python would
        traceback.print_exc()
        return 1
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
