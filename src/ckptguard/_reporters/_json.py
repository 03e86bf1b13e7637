"""JSON reporter: one document for the whole scan.

Contract (field names fixed; more fields may be added)::

    {"files": [{"path", "format", "verdict",
                "globals": [{"name", "verdict", "reason", "count"}],
                "findings": [{"rule", "severity", "message"}]}],
     "policy_sources": [str], "policy_ignored": [str]}

``policy_sources``: where the policy came from (shipped profiles, policy file, the current
project's pyproject.toml, --allow); ``policy_ignored``: policy files found but not applied.

``name`` of a global is the qualified ``module.name``.
"""

from __future__ import annotations

from ckptguard._reporters._common import summary, tool_version
from ckptguard._reporters._jsontext import dumps as json_dumps
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord, ScanRecord

# typing is only needed by type checkers; importing it costs start-up time (mypy honours a
# module-level TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 2  # 2: skipped entries are objects (path, reason, model_format)


def global_to_dict(g: GlobalRecord) -> dict[str, Any]:
    return {
        "name": g.qualified_name,
        "verdict": g.verdict.value,
        "reason": g.reason,
        "count": g.count,
        "module": g.module,
        "attribute": g.name,
        "uses": [u.value for u in g.uses],
        "locations": list(g.locations),
    }


def finding_to_dict(f: FindingRecord) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.value,
        "message": f.message,
        "location": f.location,
    }


def file_to_dict(f: FileRecord) -> dict[str, Any]:
    out = _file_dict(f)
    if f.items:  # a DCP checkpoint: one unit with its bytes items, each with its verdict
        out["items"] = [file_to_dict(i) for i in f.items]
    return out


def _file_dict(f: FileRecord) -> dict[str, Any]:
    return {
        "path": f.path,
        "format": f.format,
        "verdict": f.verdict.value,
        "size": f.size,
        "bytes_read": f.bytes_read,
        "globals": [global_to_dict(g) for g in f.globals],
        "findings": [finding_to_dict(x) for x in f.findings],
        "pickles": list(f.pickles),
        "needs_allow": list(f.needs_allow),
        "hint": f.hint,
    }


def to_document(report: ScanRecord) -> dict[str, Any]:
    return {
        "tool": "ckptguard",
        "version": tool_version(),
        "schema_version": SCHEMA_VERSION,
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "summary": summary(report),
        "files": [file_to_dict(f) for f in report.files],
        # files met while walking directories that were not scanned, and why; a non-null
        # model_format (a model ckptguard does not read) makes the scan's verdict "error"
        "skipped": [
            {"path": s.path, "reason": s.reason, "model_format": s.model_format}
            for s in report.skipped
        ],
        "policy_sources": list(report.policy_sources),
        "policy_ignored": list(report.policy_ignored),
    }


def dumps(report: ScanRecord, *, indent: int | None = 2) -> str:
    """The document as text; ``indent=None`` gives one compact line (json's C encoder: several
    times faster on large scans than indented output, which is pure Python)."""
    return json_dumps(to_document(report), indent=indent)
