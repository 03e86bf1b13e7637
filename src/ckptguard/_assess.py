"""Judge what a format reader extracted from one file: each global against the policy, the
findings, the file's verdict and the next step to take (a :class:`FileReport`).

Shared by the local scan (:mod:`ckptguard._scan`), DCP checkpoints (:mod:`ckptguard._dcp`) and
remote objects (:mod:`ckptguard._remote`); it reads nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from ckptguard._advice import referenced_hint, referenced_only
from ckptguard._errors import CheckpointError, PickleError
from ckptguard._formats import Extracted, _torchscript
from ckptguard._pickle import GlobalUsage
from ckptguard._policy import Policy
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord
from ckptguard._scan_rules import SCAN_ERROR
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict, worst_verdict

_DANGEROUS_HINT = (
    "this file tries to run code or reach outside Python's data types: do not load it; "
    "if you produced it yourself, re-save it from a trusted environment"
)


class _Acc:
    """Accumulates one global's usage across the pickles of a file."""

    __slots__ = ("count", "locations", "uses")

    def __init__(self) -> None:
        self.count = 0
        self.uses: set[Use] = set()
        self.locations: list[str] = []


def _collect(extracted: Extracted) -> dict[tuple[str, str], _Acc]:
    acc: dict[tuple[str, str], _Acc] = {}
    for stream in extracted.pickles:
        for g in stream.analysis.globals:
            a = acc.setdefault((g.module, g.name), _Acc())
            a.count += g.count
            a.uses.update(g.uses)
            if stream.name not in a.locations:
                a.locations.append(stream.name)
    return acc


def _judge(acc: dict[tuple[str, str], _Acc], policy: Policy) -> tuple[GlobalRecord, ...]:
    refs = []
    classify = policy.classify
    for (module, name), a in acc.items():
        verdict, reason = classify(module, name)
        # Use is a str enum: sorted() orders its members by their values
        refs.append(
            GlobalRecord(
                module, name, verdict, reason, a.count, tuple(sorted(a.uses)), tuple(a.locations)
            )
        )
    refs.sort(key=_report_order)
    return tuple(refs)


_ORDER = {Verdict.DANGEROUS: 0, Verdict.UNKNOWN: 1, Verdict.ALLOWED: 2, Verdict.SAFE: 3}


def _report_order(r: GlobalRecord) -> tuple[int, str, str]:
    """Dangerous first, then unknown, allowed and safe; by name within each."""
    return (_ORDER[r.verdict], r.module, r.name)


def _hint(
    path: str,
    refs: tuple[GlobalRecord, ...],
    verdict: FileVerdict,
    findings: Sequence[FindingRecord] = (),
) -> str | None:
    if verdict is FileVerdict.DANGEROUS:
        referenced = referenced_only(refs, findings)  # dangerous values the file never calls
        return referenced_hint(referenced) if referenced else _DANGEROUS_HINT
    if verdict is FileVerdict.REVIEW:
        unknown = [r.qualified_name for r in refs if r.verdict is Verdict.UNKNOWN]
        if unknown:
            flags = " ".join(f"--allow {n}" for n in unknown)
            return (
                f"if you trust these classes: ckptguard scan {path} {flags}  "
                f"(Python: ckptguard.load(path, allow={unknown!r})); "
                f"to fix the file for good: ckptguard convert {path} OUT.pt (it stores these "
                "classes as plain data: an Enum as its value, an object as a dict; load OUT.pt "
                "with restore_types=True to get the objects back)"
            )
        return "review the findings above before loading this file"
    return None


def file_verdict(
    refs: tuple[GlobalRecord, ...], findings: tuple[FindingRecord, ...] | list[FindingRecord]
) -> FileVerdict:
    """The worst of the globals' and the findings' verdicts, where a dangerous global or finding
    outranks an error: a file that reaches ``os.system`` and then breaks is reported as the
    threat it is (with the error among its findings), not only as a damaged file."""
    verdict = worst_verdict(
        [r.file_verdict for r in refs] + [f.severity.file_verdict for f in findings]
    )
    if verdict is FileVerdict.ERROR and (
        any(r.verdict is Verdict.DANGEROUS for r in refs)
        or any(f.severity is Severity.DANGEROUS for f in findings)
    ):
        return FileVerdict.DANGEROUS
    return verdict


def error_report(
    path: str, err: CheckpointError, size: int | None, policy: Policy | None = None
) -> FileRecord:
    refs = _partial_refs(err, policy) if policy is not None else ()
    findings = (
        FindingRecord(
            # the format readers name the rule a file breaks (FormatError.rule)
            rule=getattr(err, "rule", SCAN_ERROR),
            severity=Severity.ERROR,
            message=err.problem,
            location=str(err.offset) if isinstance(err, PickleError) and err.offset else None,
        ),
    )
    verdict = file_verdict(refs, findings)
    return FileRecord(
        path=path,
        format=err.format or "unknown",
        verdict=verdict,
        globals=refs,
        findings=findings,
        size=size,
        hint=_DANGEROUS_HINT if verdict is FileVerdict.DANGEROUS else err.hint,
    )


def _partial_refs(err: CheckpointError, policy: Policy) -> tuple[GlobalRecord, ...]:
    """Globals a broken pickle referenced before it broke: still worth showing."""
    if not isinstance(err, PickleError) or not err.partial:
        return ()
    acc: dict[tuple[str, str], _Acc] = {}
    for g in err.partial:
        _add_usage(acc, g, "partial")
    return _judge(acc, policy)


def _add_usage(acc: dict[tuple[str, str], _Acc], g: GlobalUsage, where: str) -> None:
    a = acc.setdefault((g.module, g.name), _Acc())
    a.count += g.count
    a.uses.update(g.uses)
    a.locations.append(where)


def report_for(path: str, extracted: Extracted, policy: Policy, size: int | None) -> FileRecord:
    """Judge what a format reader extracted from the file at ``path``."""
    spath = path
    refs = _judge(_collect(extracted), policy)
    findings: list[FindingRecord] = []
    for stream in extracted.pickles:
        findings.extend(stream.analysis.findings)
    findings.extend(extracted.findings)
    verdict = file_verdict(refs, findings)
    return FileRecord(
        path=spath,
        format=extracted.format,
        verdict=verdict,
        globals=refs,
        findings=tuple(findings),
        pickles=tuple(s.name for s in extracted.pickles),
        size=size,
        hint=_torchscript.hint(spath)
        if _torchscript.only_torchscript(refs, findings)
        else _hint(spath, refs, verdict, findings),
    )
