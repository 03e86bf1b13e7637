"""Human and JSON reporters for ``ckptguard code`` (a :class:`CodeReport`).

JSON contract (names fixed; more fields may be added to each finding)::

    {"findings": [{"path", "line", "column", "rule", "message", "fixable"}]}

Lines and columns are 1-based. After ``--fix`` the list holds what was not fixed.
"""

from __future__ import annotations

from ckptguard._code._findings import CodeError, CodeFinding, CodeReport
from ckptguard._reporters._human import _Painter
from ckptguard._reporters._jsontext import dumps as json_dumps
from ckptguard._reporters._terminal import lines_to_text


def dumps(report: CodeReport) -> str:
    doc: dict[str, object] = {"findings": [x.as_dict() for x in report.findings]}
    if report.skipped:  # links not followed while walking (only when there are any)
        doc["skipped"] = [{"path": s.path, "reason": s.reason} for s in report.skipped]
    return json_dumps(doc, indent=2)


def render_finding(x: CodeFinding, paint: _Painter) -> str:
    """One line (paths and messages are escaped when the lines become text)."""
    marker = " [*]" if x.fixable else ""
    where = paint(f"{x.path}:{x.line}:{x.column}:", "bold")
    return f"{where} {paint(x.rule.id, x.rule.level)}{marker} {x.message}"


def render_error(e: CodeError, paint: _Painter) -> list[str]:
    where = e.path
    if e.line is not None:
        where += f":{e.line}:{e.column or 1}"
    lines = [f"{paint(where + ':', 'bold')} {paint('error', 'error')}: {e.message}"]
    if e.hint:
        lines.append(f"  hint: {e.hint}")
    return lines


def render(report: CodeReport, *, color: bool = False, fix: bool = False) -> str:
    """Findings (``path:line:col: RULE [*] message``; ``[*]`` = fixable), then a summary."""
    paint = _Painter(color)
    out = [render_finding(x, paint) for x in report.findings]
    out.append(_summary(report, fix=fix))
    return lines_to_text(out)


def render_errors(report: CodeReport, *, color: bool = False) -> str:
    paint = _Painter(color)
    return lines_to_text([line for e in report.all_errors for line in render_error(e, paint)])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(report: CodeReport, *, fix: bool) -> str:
    checked = len([f for f in report.files if f.error is None])
    findings = report.findings
    parts: list[str] = []
    if fix:
        fixed = report.fixed
        files = len({x.path for x in fixed})
        parts.append(f"Fixed {_plural(len(fixed), 'finding')} in {_plural(files, 'file')}")
        parts.append(f"{len(findings)} remaining (not fixable automatically)")
    elif findings:
        files = len({x.path for x in findings})
        fixable = sum(1 for x in findings if x.fixable)
        parts.append(f"Found {_plural(len(findings), 'finding')} in {_plural(files, 'file')}")
        parts.append(f"{fixable} fixable with --fix ([*])")
    else:
        parts.append("No findings")
    parts.append(f"{_plural(checked, 'file')} checked")
    errors = len(report.all_errors)
    if errors:
        parts.append(_plural(errors, "error"))
    return "; ".join(parts) + "."
