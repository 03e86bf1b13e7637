"""SARIF 2.1.0 reporter (for GitHub code scanning and other CI dashboards).

One result per non-safe global (rules ``global-unknown``, ``global-dangerous``) and per finding
(rule id = the finding's rule, e.g. ``zip-case-collision``; files that cannot be scanned carry
a ``scan-error`` finding). ``rules`` lists every rule of :mod:`ckptguard._scan_rules`. Paths
under ``base_dir`` are written relative to ``%SRCROOT%``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from ckptguard._advice import referenced_only
from ckptguard._formats._torchscript import only_torchscript
from ckptguard._reporters._common import tool_version
from ckptguard._reporters._jsontext import dumps as json_dumps
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord, ScanRecord
from ckptguard._scan_rules import (
    FORMAT_NOT_READ,
    GLOBAL_DANGEROUS,
    GLOBAL_UNKNOWN,
    RULES,
    Rule,
)
from ckptguard._verdict import Severity, Verdict

# typing is only for type checkers: the scan path never imports it (start-up time; mypy honours
# a module-level TYPE_CHECKING constant)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    if "://" in path:  # a remote object: its URL as it is (percent-encoded)
        return {"uri": quote(path, safe=":/?#[]@!$&'()*+,;=%~")}
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


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.description},
        "fullDescription": {"text": rule.description},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "helpUri": f"{INFORMATION_URI}/blob/main/docs/rules.md#{rule.id}",
    }


def _rules() -> list[dict[str, Any]]:
    """Every rule ckptguard reports (the registry), sorted by id."""
    return [_rule(RULES[rid]) for rid in sorted(RULES)]


def _global_result(f: FileRecord, g: GlobalRecord, location: dict[str, Any]) -> dict[str, Any]:
    if g.verdict is Verdict.DANGEROUS and referenced_only(f.globals, f.findings):
        rule, level = GLOBAL_DANGEROUS, "error"
        text = (
            f"{f.path} would import {g.qualified_name} ({g.reason}): the file references it as "
            "a value and does not call it itself, but loading hands it to your code; do not "
            "load it."
        )
    elif g.verdict is Verdict.DANGEROUS:
        rule, level = GLOBAL_DANGEROUS, "error"
        text = (
            f"{f.path} would import {g.qualified_name} ({g.reason}): this file tries to run "
            "code; do not load it."
        )
    elif only_torchscript(f.globals, f.findings):  # allowing it would not help
        rule, level = GLOBAL_UNKNOWN, "warning"
        text = f"{f.path} is a TorchScript archive naming {g.qualified_name} ({g.reason}); {f.hint}"
    else:
        rule, level = GLOBAL_UNKNOWN, "warning"
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
                "ruleId": FORMAT_NOT_READ,
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
    rule_list = _rules()
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
            results.append(_finding_result(owner, x, location))

    results.extend(_scan_results(report, base_dir))
    index = {r["id"]: i for i, r in enumerate(rule_list)}
    for r in results:  # a rule missing from the registry (a bug) still gets a valid log
        if r["ruleId"] not in index:
            index[r["ruleId"]] = len(rule_list)
            rule_list.append(_rule(Rule(r["ruleId"], Severity.ERROR, "Checkpoint finding.")))
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
