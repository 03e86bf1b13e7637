"""Scan rule ids are defined once (ckptguard._scan_rules) and used everywhere from there."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from ckptguard import _scan_rules
from ckptguard._reporters import _sarif
from ckptguard._results import ScanRecord
from ckptguard._scan_rules import RULES
from ckptguard._verdict import Severity

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ckptguard"
RULE_ID = re.compile(
    r"(pickle|zip|torch|npy|safetensors|format|scan|global|remote|dcp)-[a-z0-9]+(-[a-z0-9]+)*"
)
ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| (.+) \|$")


def test_every_rule_is_a_kebab_id_with_an_area_prefix_a_severity_and_a_sentence() -> None:
    assert len(RULES) >= 40
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id
        assert RULE_ID.fullmatch(rule_id), rule_id
        assert isinstance(rule.severity, Severity)
        assert rule.description.endswith(".") and rule.description[0].isupper(), rule_id


def test_each_constant_names_its_rule() -> None:
    constants = {k: v for k, v in vars(_scan_rules).items() if k.isupper() and k != "RULES"}
    assert sorted(constants.values()) == sorted(RULES)
    for name, rule_id in constants.items():
        assert name == rule_id.upper().replace("-", "_")


def test_docs_rules_md_lists_exactly_the_registry() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    rows = [m.groups() for line in text.splitlines() if (m := ROW.match(line))]
    expected = [
        (r.id, r.severity.value, r.description) for r in sorted(RULES.values(), key=lambda r: r.id)
    ]
    missing = "\n".join(f"| `{i}` | {s} | {d} |" for i, s, d in expected if (i, s, d) not in rows)
    assert rows == expected, f"docs/rules.md must list the registry; rows to add or fix:\n{missing}"


@pytest.mark.parametrize("doc", [*sorted(p.name for p in (ROOT / "docs").glob("*.md")), "README"])
def test_rule_ids_quoted_in_the_docs_exist(doc: str) -> None:
    path = ROOT / "README.md" if doc == "README" else ROOT / "docs" / doc
    text = path.read_text(encoding="utf-8")
    if doc == "code.md":  # `ckptguard code` has rules of its own (torch-load-*, pickle-load)
        return
    quoted = {
        m.group(1) for m in re.finditer(r"`([a-z0-9-]+)`", text) if RULE_ID.fullmatch(m.group(1))
    }
    assert quoted <= set(RULES), sorted(quoted - set(RULES))


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_module_spells_a_rule_id_outside_the_registry() -> None:
    scattered = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "_scan_rules.py" and "_code" not in path.parts
        for line, value in _string_constants(path)
        if RULE_ID.fullmatch(value)
    ]
    assert scattered == []


def test_the_checker_above_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        '"""zip-case-variant in a docstring is prose."""\nx = f("zip-case-variant")\n'
    )
    assert [v for _, v in _string_constants(sample) if RULE_ID.fullmatch(v)] == ["zip-case-variant"]


def test_sarif_lists_every_rule_from_the_registry_with_its_level() -> None:
    doc = json.loads(_sarif.dumps(ScanRecord(files=())))
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    for r in rules:
        rule = RULES[r["id"]]
        assert r["defaultConfiguration"]["level"] == _sarif._LEVEL[rule.severity]
        assert r["shortDescription"]["text"] == rule.description


def _severity_at_call_sites() -> list[tuple[str, str, str]]:
    """(where, rule constant, severity name) for each place a reader reports a rule: a call
    with a rule constant and then ``Severity.X``, or ``error_finding``/``corrupt``/
    ``FormatError`` (which report ``error``)."""
    constants = {k for k in vars(_scan_rules) if k.isupper() and k != "RULES"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            args = [*node.args, *(k.value for k in node.keywords if k.arg in ("rule", "severity"))]
            names = [a.id for a in args if isinstance(a, ast.Name) and a.id in constants]
            if not names:
                continue
            where = f"{path.name}:{node.lineno}"
            severities = [
                a.attr
                for a in args
                if isinstance(a, ast.Attribute) and getattr(a.value, "id", "") == "Severity"
            ]
            if severities:
                found.append((where, names[0], severities[0]))
            elif func in ("error_finding", "corrupt", "FormatError", "_read_polyglot"):
                found.append((where, names[0], "ERROR"))
    return found


def test_readers_report_each_rule_with_its_registered_severity() -> None:
    sites = _severity_at_call_sites()
    assert len(sites) >= 40  # the walk sees the readers
    registered = {
        k: RULES[v].severity.name
        for k, v in vars(_scan_rules).items()
        if isinstance(v, str) and v in RULES
    }
    wrong = [
        f"{where}: {name} reported as {severity}, registered as {registered[name]}"
        for where, name, severity in sites
        if registered[name] != severity
    ]
    assert wrong == []
