"""The errors ``ckptguard.load`` raises when a scan does not clear a file: what, why, what next."""

from __future__ import annotations

from ckptguard._advice import is_reference_only, referenced_hint, referenced_only
from ckptguard._errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError
from ckptguard._formats._torchscript import hint as torchscript_hint
from ckptguard._formats._torchscript import only_torchscript
from ckptguard._reporters._terminal import escape
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord
from ckptguard._verdict import REFUSED, FileVerdict, Severity, Verdict

_MAX_LISTED = 12


def _global_line(g: GlobalRecord, referenced: bool = False) -> str:
    if g.verdict is Verdict.DANGEROUS and referenced and is_reference_only(g):
        tail = (
            "referenced as a value, not called by the file itself; loading would import it "
            "and hand it to your code; it can never be allowed"
        )
    elif g.verdict is Verdict.DANGEROUS:
        tail = "this file tries to run code or reach the system; it can never be allowed"
    else:
        tail = "allow it only if you trust the code that defines it"
    return f"  - {escape(g.qualified_name)}: {g.verdict} ({escape(g.reason)}) - {tail}"


def _finding_line(f: FindingRecord) -> str:
    where = f" at {escape(f.location)}" if f.location else ""
    return f"  - [{f.rule}] {f.severity}: {escape(f.message)}{where}"


def refusal(report: FileRecord) -> CheckpointError:
    """The error for a scanned file whose verdict is not ``safe``."""
    path = report.path
    if report.verdict is FileVerdict.ERROR:
        problems = [f for f in report.findings if f.severity is Severity.ERROR]
        detail = "; ".join(f.message for f in problems[:3]) or "the file could not be read"
        return CorruptCheckpointError(
            f"cannot be loaded: {detail}",
            path=path,
            hint=report.hint or f"ckptguard scan {path}  (for the full diagnosis)",
            format=report.format,
        )
    bad = [g for g in report.globals if g.verdict in REFUSED]
    dangerous = [g for g in bad if g.verdict is Verdict.DANGEROUS]
    unknown = [g for g in bad if g.verdict is Verdict.UNKNOWN]
    findings = [f for f in report.findings if f.severity is not Severity.INFO]
    lines = []
    if bad:
        lines.append(
            f"refused: the file needs {len(bad)} global{'s' if len(bad) != 1 else ''} "
            "that the policy does not allow:"
        )
        # "only referenced" is said of a file as a whole: a value passed to a call that calls
        # it (functools.partial(...)() and the like) is a call
        referenced = bool(referenced_only(report.globals, report.findings))
        lines.extend(_global_line(g, referenced) for g in bad[:_MAX_LISTED])
        if len(bad) > _MAX_LISTED:
            lines.append(f"  ... and {len(bad) - _MAX_LISTED} more (ckptguard scan {path})")
    if findings:
        lines.append("refused: the scan found:" if not bad else "and the scan found:")
        lines.extend(_finding_line(f) for f in findings[:_MAX_LISTED])
    if only_torchscript(report.globals, report.findings):
        hint = torchscript_hint(path)  # not "tries to run code": it is code, and convert works
    elif referenced_only(report.globals, report.findings):
        hint = referenced_hint(referenced_only(report.globals, report.findings), listed_above=True)
    elif dangerous or any(f.severity is Severity.DANGEROUS for f in findings):
        hint = (
            "this file tries to run code when loaded: do not load it, and there is no way to "
            "allow it. If you made it yourself, re-save it from a trusted environment as plain "
            "tensors and data"
        )
    elif unknown:
        names = [g.qualified_name for g in unknown]
        flags = " ".join(f"--allow {n}" for n in names)
        hint = (
            f"if you trust these classes: ckptguard.load({path!r}, allow={names!r})  "
            f"(for third-party code: `with ckptguard.patched(allow={names!r}):` or "
            f"`python -m ckptguard run {flags} SCRIPT.py`); to fix the file for good: "
            f"ckptguard convert {path} OUT.pt (it stores these classes as plain data: an Enum "
            "as its value, an object as a dict; load OUT.pt with restore_types=True, or "
            "`ckptguard run --restore-types`, to get the objects back)"
        )
    else:
        hint = f"review the findings: ckptguard scan {path}"
    return UnsafeCheckpointError(
        "\n".join(lines), path=path, hint=hint, format=report.format, report=report
    )
