"""The public report model: what ``ckptguard.scan()`` returns, as frozen dataclasses.

Field names used in the JSON output are part of the public contract. The scanner itself works
on the cheaper records of :mod:`ckptguard._results` (same fields, same derived properties);
:func:`scan_report` and :func:`file_report` turn them into these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptguard._results import (
    FileRecord,
    FileView,
    FindingRecord,
    GlobalRecord,
    GlobalView,
    ScanRecord,
    ScanView,
    SkippedRecord,
    SkippedView,
)
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict, worst_verdict

__all__ = [
    "FileReport",
    "FileVerdict",
    "Finding",
    "GlobalRef",
    "ScanReport",
    "Severity",
    "Skipped",
    "Use",
    "Verdict",
    "file_report",
    "scan_report",
    "worst_verdict",
]


@dataclass(frozen=True)
class Finding:
    """Something noteworthy about a file that is not a single global."""

    rule: str  # stable id, e.g. "zip-duplicate-member", "pickle-truncated"
    severity: Severity
    message: str
    location: str | None = None  # e.g. "archive/data.pkl@123" (member and byte offset)


@dataclass(frozen=True)
class GlobalRef(GlobalView):
    """One global a file's pickles would import, with its verdict.

    ``qualified_name`` is ``module.name``; ``file_verdict`` the file verdict it forces.
    """

    module: str
    name: str
    verdict: Verdict
    reason: str
    count: int  # how many times the pickles reference it
    uses: tuple[Use, ...] = ()  # sorted, distinct
    locations: tuple[str, ...] = ()  # pickles (members) that reference it


@dataclass(frozen=True)
class FileReport(FileView):
    """The scan result for one file. ``needs_allow``: the unknown globals' qualified names."""

    path: str
    format: str  # "pytorch-zip", "pytorch-legacy", "torchscript", "pickle", "numpy", "numpy-npz",
    #              "safetensors", "git-lfs-pointer", "html", "text", "unknown", ...
    verdict: FileVerdict
    globals: tuple[GlobalRef, ...] = ()
    findings: tuple[Finding, ...] = ()
    pickles: tuple[str, ...] = ()  # names of the pickles that were analysed
    size: int | None = None  # bytes on disk
    hint: str | None = None  # the next command to run, when the verdict is not safe
    items: tuple[FileReport, ...] = ()  # a DCP checkpoint's bytes items, each with its verdict


@dataclass(frozen=True)
class Skipped(SkippedView):
    """A file met while walking a directory that was not scanned, and why."""

    path: str
    reason: str  # e.g. "a text file, not a checkpoint"
    model_format: str | None = None  # a model format ckptguard does not read ("onnx",
    #                                  "tensorflow", ...): the scan's verdict is then error


@dataclass(frozen=True)
class ScanReport(ScanView):
    """The result of scanning one or more paths. ``verdict``: the worst file verdict, and
    ``error`` when nothing was scanned or a model file ckptguard does not read was skipped;
    ``exit_code``: 0 all safe, 1 any review/dangerous, 2 any error."""

    files: tuple[FileReport, ...]
    skipped: tuple[Skipped, ...] = field(default=())  # files met while walking directories
    #                                                  that were not scanned, with the reason
    policy_sources: tuple[str, ...] = ()  # where the policy that judged the files came from
    policy_ignored: tuple[str, ...] = ()  # policy files found but not applied, and why


def _finding(r: FindingRecord) -> Finding:
    return Finding(r.rule, r.severity, r.message, r.location)


def _global(r: GlobalRecord) -> GlobalRef:
    return GlobalRef(r.module, r.name, r.verdict, r.reason, r.count, r.uses, r.locations)


def file_report(r: FileRecord) -> FileReport:
    """The public report of one scanned file."""
    return FileReport(
        path=r.path,
        format=r.format,
        verdict=r.verdict,
        globals=tuple(_global(g) for g in r.globals),
        findings=tuple(_finding(f) for f in r.findings),
        pickles=r.pickles,
        size=r.size,
        hint=r.hint,
        items=tuple(file_report(i) for i in r.items),
    )


def _skipped(r: SkippedRecord) -> Skipped:
    return Skipped(r.path, r.reason, r.model_format)


def scan_report(r: ScanRecord) -> ScanReport:
    """The public report of a scan."""
    return ScanReport(
        files=tuple(file_report(f) for f in r.files),
        skipped=tuple(_skipped(s) for s in r.skipped),
        policy_sources=r.policy_sources,
        policy_ignored=r.policy_ignored,
    )
