"""``ckptguard code PATH...``: find (and fix) risky torch.load / pickle.load call sites."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ckptguard._cli._output import write_text
from ckptguard._code import _rules as R
from ckptguard._code._rules import RULES
from ckptguard._errors import UsageError

if TYPE_CHECKING:
    from ckptguard._code._findings import CodeReport
    from ckptguard._code._rules import Rule

HELP = "find (and --fix) risky torch.load / pickle.load call sites in Python source"

DESCRIPTION = """\
Check Python files (directories are walked for *.py, skipping .git, virtualenvs and build
directories; symbolic links met there are listed as skipped, never followed; only regular
files up to 10 MiB are read) for torch.load calls that can run code from a checkpoint,
torch.load used as a value or monkey-patched, torch.hub.load_state_dict_from_url /
torch.utils.model_zoo.load_url without weights_only=True, pickle/dill/joblib loads and
numpy.load(allow_pickle=True). Names are resolved through imports (import torch as th, from
torch import load as f, torch.serialization.load). Nothing is imported or executed. --fix
rewrites fixable calls ([*]) to ckptguard.load(...) (hub loaders: weights_only=True), never
through a symbolic link.

Suppress a finding with a comment on the line where the call starts or ends:
  # ckptguard: ignore[CKG101]      (or a rule name, several comma-separated; bare: all rules)"""

EPILOG = """\
rules:
{rules}

exit status: 0 no findings, 1 findings (after --fix: findings that remain),
             2 a file could not be read or parsed, or bad usage

examples:
  ckptguard code src/
  ckptguard code src/ --diff          # preview the fix
  ckptguard code src/ --fix
  ckptguard code src/ --json > findings.json
  ckptguard code src/ --sarif ckptguard-code.sarif"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _rules_help() -> str:
    return "\n".join(f"  {r.id}  {r.name}" for r in RULES)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "code",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG.format(rules=_rules_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="Python files or directories")
    p.add_argument(
        "--fix", action="store_true", help="rewrite fixable calls to ckptguard.load(...)"
    )
    p.add_argument(
        "--diff", action="store_true", help="print the fix as a unified diff; write nothing"
    )
    p.add_argument("--json", action="store_true", help="write one JSON document to stdout")
    p.add_argument(
        "--sarif", metavar="FILE", help="also write a SARIF 2.1.0 report to FILE ('-': stdout)"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        metavar="N",
        help="check files in N worker processes (default 1)",
    )
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="RULE",
        help="only these rules (ID, name or ID prefix; comma-separated or repeated)",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help="skip these rules (ID, name or ID prefix; comma-separated or repeated)",
    )
    p.set_defaults(run=run)


def _rules(select: list[str], ignore: list[str]) -> frozenset[Rule]:
    def expand(values: list[str]) -> set[Rule]:
        chosen: set[Rule] = set()
        for value in values:
            for code in filter(None, (c.strip() for c in value.split(","))):
                rules = R.select(code)
                if not rules:
                    known = ", ".join(r.id for r in R.RULES)
                    raise UsageError(f"unknown rule {code!r}", hint=f"rules are: {known}")
                chosen.update(rules)
        return chosen

    selected = expand(select) if select else set(R.RULES)
    return frozenset(selected - expand(ignore))


def run(args: argparse.Namespace) -> int:
    from ckptguard._code._runner import check_paths  # noqa: PLC0415
    from ckptguard._reporters import _code  # noqa: PLC0415
    from ckptguard._reporters._human import use_color  # noqa: PLC0415

    stdout_users = [f for f, on in (("--json", args.json), ("--diff", args.diff)) if on]
    if args.sarif == "-":
        stdout_users.append("--sarif -")
    if len(stdout_users) > 1:
        raise UsageError(
            f"{' and '.join(stdout_users)} all write to stdout",
            hint="pick one, or write the SARIF report to a file: --sarif ckptguard-code.sarif",
        )
    rules = _rules(args.select, args.ignore)
    report = check_paths(args.paths, rules=rules, fix=args.fix, diff=args.diff, jobs=args.jobs)

    sys.stderr.write(_render_skipped(report))
    sys.stderr.write(_code.render_errors(report, color=use_color(sys.stderr)))
    if args.sarif:
        _write_sarif(report, args.sarif)
    if args.json:
        sys.stdout.write(_code.dumps(report) + "\n")
    elif args.diff:  # the diff on stdout (pipe it to `git apply -p1`), the summary on stderr
        sys.stdout.write("".join(f.diff for f in report.files))
        sys.stderr.write(_code.render(report, color=use_color(sys.stderr)))
    elif args.sarif != "-":
        sys.stdout.write(_code.render(report, color=use_color(sys.stdout), fix=args.fix))
    return report.exit_code


def _render_skipped(report: CodeReport) -> str:
    """One note per path deliberately not read (links met while walking a directory)."""
    from ckptguard._reporters._human import clean  # noqa: PLC0415

    return "".join(f"{clean(s.path)}: skipped: {clean(s.reason)}\n" for s in report.skipped)


def _write_sarif(report: CodeReport, target: str) -> None:
    from ckptguard._reporters import _code_sarif  # noqa: PLC0415

    write_text(_code_sarif.dumps(report, base_dir=os.getcwd()) + "\n", target, "SARIF report")
