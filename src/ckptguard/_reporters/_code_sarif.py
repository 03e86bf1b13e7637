"""SARIF 2.1.0 reporter for ``ckptguard code``: one result per finding, with a region.

Every rule of :mod:`ckptguard._code._rules` is listed (ID, name, doc line). Files that could
not be checked appear as failed tool-execution notifications. Shares the location and document
conventions of the scan reporter (:mod:`ckptguard._reporters._sarif`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ckptguard._code._findings import CodeError, CodeFinding, CodeReport
from ckptguard._code._rules import RULES, Rule
from ckptguard._reporters._common import tool_version
from ckptguard._reporters._jsontext import dumps as json_dumps
from ckptguard._reporters._sarif import (
    INFORMATION_URI,
    SARIF_SCHEMA,
    SARIF_VERSION,
    SRCROOT,
    _artifact_location,
    file_uri,
)


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.name.split("-")),
        "shortDescription": {"text": rule.name},
        "fullDescription": {"text": rule.doc},
        "defaultConfiguration": {"level": rule.level},
        # the GitHub anchor of the heading "### CKG101 `torch-load-no-weights-only`"
        "helpUri": f"{INFORMATION_URI}/blob/main/docs/code.md#{rule.id.lower()}-{rule.name}",
        "properties": {"kebabName": rule.name},
    }


def _result(x: CodeFinding, index: int, base_dir: str | None) -> dict[str, Any]:
    return {
        "ruleId": x.rule.id,
        "ruleIndex": index,
        "level": x.rule.level,
        "message": {"text": x.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact_location(x.path, base_dir),
                    "region": {
                        "startLine": x.line,
                        "startColumn": x.column,
                        "endLine": x.end_line,
                        "endColumn": x.end_column,
                    },
                }
            }
        ],
        "properties": {"fixable": x.fixable},
    }


def _notification(e: CodeError, base_dir: str | None) -> dict[str, Any]:
    location: dict[str, Any] = {"artifactLocation": _artifact_location(e.path, base_dir)}
    if e.line is not None:
        location["region"] = {"startLine": e.line, "startColumn": e.column or 1}
    text = f"{e.path}: {e.message}" + (f". Hint: {e.hint}" if e.hint else "")
    return {
        "level": "error",
        "message": {"text": text},
        "locations": [{"physicalLocation": location}],
    }


def to_document(report: CodeReport, *, base_dir: str | None = None) -> dict[str, Any]:
    """The SARIF log as a dict; ``base_dir`` (usually the working directory) is %SRCROOT%."""
    index = {r.id: i for i, r in enumerate(RULES)}
    errors = report.all_errors
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "ckptguard",
                "version": tool_version(),
                "semanticVersion": tool_version(),
                "informationUri": INFORMATION_URI,
                "rules": [_rule(r) for r in RULES],
            }
        },
        "invocations": [
            {
                "executionSuccessful": not errors,
                "toolExecutionNotifications": [_notification(e, base_dir) for e in errors],
            }
        ],
        "results": [_result(x, index[x.rule.id], base_dir) for x in report.findings],
        "columnKind": "unicodeCodePoints",
    }
    if base_dir is not None:
        run["originalUriBaseIds"] = {
            SRCROOT: {"uri": file_uri(str(Path(base_dir).resolve())) + "/"}
        }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def dumps(report: CodeReport, *, base_dir: str | None = None) -> str:
    return json_dumps(to_document(report, base_dir=base_dir), indent=2)
