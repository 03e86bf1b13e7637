"""Results of ``ckptguard code``: frozen dataclasses, the input of its reporters.

Lines are 1-based, columns 1-based (in Unicode code points), like ruff and SARIF.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptguard._code._rules import Rule


@dataclass(frozen=True)
class CodeFinding:
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    rule: Rule
    message: str
    fixable: bool

    def as_dict(self) -> dict[str, object]:
        """The JSON object: the contract names first (path, line, column, rule, message,
        fixable), then extras."""
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "rule": self.rule.id,
            "message": self.message,
            "fixable": self.fixable,
            "name": self.rule.name,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


@dataclass(frozen=True)
class CodeError:
    """A file that could not be checked (missing, undecodable, not Python) or fixed."""

    path: str
    message: str
    hint: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class CodeSkip:
    """A path deliberately not read (a symbolic link met while walking a directory)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileResult:
    path: str
    findings: tuple[CodeFinding, ...] = ()  # what remains (after --fix: what was not fixed)
    fixed: tuple[CodeFinding, ...] = ()  # fixed and written by --fix (never with --diff)
    error: CodeError | None = None
    diff: str = ""  # unified diff of the fix (only with --diff)


@dataclass(frozen=True)
class CodeReport:
    files: tuple[FileResult, ...] = ()
    errors: tuple[CodeError, ...] = field(default=())  # paths that are not files at all
    skipped: tuple[CodeSkip, ...] = field(default=())  # links not followed while walking

    @property
    def findings(self) -> tuple[CodeFinding, ...]:
        return tuple(x for f in self.files for x in f.findings)

    @property
    def fixed(self) -> tuple[CodeFinding, ...]:
        return tuple(x for f in self.files for x in f.fixed)

    @property
    def all_errors(self) -> tuple[CodeError, ...]:
        return self.errors + tuple(f.error for f in self.files if f.error is not None)

    @property
    def exit_code(self) -> int:
        """2 on any error, 1 when findings remain, 0 when clean (notes do not count)."""
        if self.all_errors:
            return 2
        return 1 if any(x.rule.level != "note" for x in self.findings) else 0
