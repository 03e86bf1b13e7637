"""Helpers shared by the reporters."""

from __future__ import annotations

from ckptguard._results import ScanRecord
from ckptguard._verdict import FileVerdict

VERDICT_ORDER = (FileVerdict.SAFE, FileVerdict.REVIEW, FileVerdict.DANGEROUS, FileVerdict.ERROR)


def summary(report: ScanRecord) -> dict[str, int]:
    """Counts per file verdict, plus ``files``, ``skipped`` and ``unread_models`` (skipped
    model files of formats ckptguard does not read)."""
    counts = {v.value: 0 for v in VERDICT_ORDER}
    for f in report.files:
        counts[f.verdict.value] += 1
    return {
        "files": len(report.files),
        **counts,
        "skipped": len(report.skipped),
        "unread_models": len(report.unread_models),
    }


def tool_version() -> str:
    from ckptguard._version import __version__  # noqa: PLC0415

    return __version__
