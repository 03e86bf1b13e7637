"""SARIF 2.1.0 reporter (for GitHub code scanning and other CI dashboards).

One result per non-safe global (rules ``global-unknown``, ``global-dangerous``) and per finding
(rule id = the finding's rule, e.g. ``zip-duplicate-member``; files that cannot be scanned carry
a ``scan-error`` finding). Paths under ``base_dir`` are written relative to ``%SRCROOT%``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ckptguard._reporters._common import tool_version
from ckptguard._reporters._jsontext import dumps as json_dumps
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord, ScanRecord
from ckptguard._verdict import Severity, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/ckptguard/ckptguard"
SRCROOT = "%SRCROOT%"

_LEVEL = {
    Severity.INFO: "note",
    Severity.WARNING: "warning",
    Severity.DANGEROUS: "error",
    Severity.ERROR: "error",
}

# Rules that do not come from a finding; always listed.
_BUILTIN_RULES: dict[str, tuple[str, str, str]] = {
    # id: (short description, full description, default level)
    "global-dangerous": (
        "Checkpoint imports a dangerous global",
        "A pickle in this checkpoint would import a code-execution, import, file, process or "
        "network primitive when loaded. Do not load the file; such globals cannot be allowed.",
        "error",
    ),
    "global-unknown": (
        "Checkpoint imports an unvetted global",
        "A pickle in this checkpoint would import a global that is neither in a vetted profile "
        "nor allowed by the policy. Review it; if you trust it, allow it with --allow "
        "module.Name or in [tool.ckptguard] in pyproject.toml.",
        "warning",
    ),
    "format-not-read": (
        "Model file of a format ckptguard does not read",
        "A directory scan met a model file (SavedModel, Keras, ONNX, GGUF, ...) that ckptguard "
        "does not read, so it was not checked: the scan's verdict is error, never safe.",
        "error",
    ),
    "scan-error": (
        "Checkpoint could not be scanned",
        "The file is missing, unreadable, truncated, inconsistent or not a checkpoint. "
        "ckptguard fails closed: an unscannable file is never reported safe.",
        "error",
    ),
}


def _uri_path(posix: str) -> str:
    """A path percent-encoded for a URI. A name the file system gave as undecodable bytes
    (lone surrogates U+DC80-U+DCFF, Python's surrogateescape) is written as those bytes (the
    file's real name); any other lone surrogate with ``backslashreplace`` (see
    :mod:`ckptguard._reporters._jsontext`)."""
    try:
        return quote(os.fsencode(posix))
    except UnicodeEncodeError:
        return quote(posix, errors="backslashreplace")


def file_uri(path: str) -> str:
    """``file://`` URI of ``path`` made absolute (never raises on odd names)."""
    return "file://" + _uri_path(Path(os.path.abspath(path)).as_posix())


def _artifact_location(path: str, base_dir: str | None) -> dict[str, Any]:
    p = Path(path)
    if base_dir is not None:
        try:
            absolute = p if p.is_absolute() else Path(base_dir) / p
            rel = Path(os.path.normpath(absolute)).relative_to(os.path.normpath(base_dir))
        except ValueError:
            pass
        else:
            return {"uri": _uri_path(rel.as_posix()), "uriBaseId": SRCROOT}
    return {"uri": file_uri(path)}


def _rule(rule_id: str, short: str, full: str, level: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("-")),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "defaultConfiguration": {"level": level},
        "helpUri": INFORMATION_URI,
    }


def _global_result(f: FileRecord, g: GlobalRecord, location: dict[str, Any]) -> dict[str, Any]:
    if g.verdict is Verdict.DANGEROUS:
        rule, level = "global-dangerous", "error"
        text = (
            f"{f.path} would import {g.qualified_name} ({g.reason}): this file tries to run "
            "code; do not load it."
        )
    else:
        rule, level = "global-unknown", "warning"
        text = (
            f"{f.path} would import {g.qualified_name}, which is not vetted ({g.reason}). If you "
            f"trust it: ckptguard scan {f.path} --allow {g.qualified_name}"
        )
    return {
        "ruleId": rule,
        "level": level,
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": location}}],
        "properties": {
            "global": g.qualified_name,
            "count": g.count,
            "uses": [u.value for u in g.uses],
            "pickles": list(g.locations),
            "fileVerdict": f.verdict.value,
        },
    }


def _finding_result(f: FileRecord, x: FindingRecord, location: dict[str, Any]) -> dict[str, Any]:
    text = f"{f.path}: {x.message}"
    if x.location:
        text += f" (at {x.location})"
    if x.severity is Severity.ERROR and f.hint:
        text += f". Hint: {f.hint}"
    result: dict[str, Any] = {
        "ruleId": x.rule,
        "level": _LEVEL[x.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": location}}],
        "properties": {"severity": x.severity.value, "fileVerdict": f.verdict.value},
    }
    if x.location:
        result["properties"]["location"] = x.location
    return result


def _scan_results(report: ScanRecord, base_dir: str | None) -> list[dict[str, Any]]:
    """Results about files the scan met but did not read: model files of other formats."""
    results: list[dict[str, Any]] = []
    for s in report.unread_models:
        results.append(
            {
                "ruleId": "format-not-read",
                "level": "error",
                "message": {"text": f"{s.path}: not scanned: {s.reason}"},
                "locations": [
                    {"physicalLocation": {"artifactLocation": _artifact_location(s.path, base_dir)}}
                ],
                "properties": {"modelFormat": s.model_format},
            }
        )
    return results


def to_document(report: ScanRecord, *, base_dir: str | None = None) -> dict[str, Any]:
    """The SARIF log as a dict; ``base_dir`` (usually the working directory) is %SRCROOT%."""
    results: list[dict[str, Any]] = []
    rules: dict[str, dict[str, Any]] = {
        rid: _rule(rid, *spec) for rid, spec in _BUILTIN_RULES.items()
    }
    artifacts: list[dict[str, Any]] = []
    for f in report.files:
        location = _artifact_location(f.path, base_dir)
        artifact: dict[str, Any] = {"location": location}
        if f.size is not None:
            artifact["length"] = f.size
        artifact["properties"] = {"format": f.format, "verdict": f.verdict.value}
        if f.items:  # a DCP checkpoint: one artifact, its bytes items with their verdicts
            artifact["properties"]["items"] = [
                {"path": i.path, "verdict": i.verdict.value} for i in f.items
            ]
        artifacts.append(artifact)
        for g in f.globals:
            if g.verdict in (Verdict.DANGEROUS, Verdict.UNKNOWN):
                results.append(_global_result(f, g, location))
        for owner, x in [(f, x) for x in f.findings] + [
            (i, x) for i in f.items for x in i.findings
        ]:
            if x.rule not in rules:
                rules[x.rule] = _rule(
                    x.rule,
                    f"Checkpoint finding: {x.rule}",
                    f"ckptguard reports '{x.rule}' about a checkpoint's container or pickles.",
                    _LEVEL[x.severity],
                )
            results.append(_finding_result(owner, x, location))

    results.extend(_scan_results(report, base_dir))
    rule_list = [rules[k] for k in sorted(rules)]
    index = {r["id"]: i for i, r in enumerate(rule_list)}
    for r in results:
        r["ruleIndex"] = index[r["ruleId"]]

    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "ckptguard",
                "version": tool_version(),
                "semanticVersion": tool_version(),
                "informationUri": INFORMATION_URI,
                "rules": rule_list,
            }
        },
        "artifacts": artifacts,
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "skipped": [{"path": x.path, "reason": x.reason} for x in report.skipped],
            "verdict": report.verdict.value,
            "policySources": list(report.policy_sources),
            "policyIgnored": list(report.policy_ignored),
        },
    }
    if not report.files:  # a scan that read nothing is an error, never safe
        run["invocations"] = [
            {
                "executionSuccessful": False,
                "toolExecutionNotifications": [
                    {"level": "error", "message": {"text": "no file was scanned"}}
                ],
            }
        ]
    if base_dir is not None:
        base_uri = file_uri(str(Path(base_dir).resolve())) + "/"
        run["originalUriBaseIds"] = {SRCROOT: {"uri": base_uri}}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def dumps(report: ScanRecord, *, base_dir: str | None = None) -> str:
    return json_dumps(to_document(report, base_dir=base_dir), indent=2)
