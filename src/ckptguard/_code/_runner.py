"""Walk paths, check each Python file, optionally fix it (atomically) or diff the fix.

Files named on the command line are always checked; directories are walked for ``*.py`` files,
skipping VCS, virtualenv, cache and build directories (and any directory holding a
``pyvenv.cfg``). A file that cannot be read or parsed is an error result, never "clean".
What is read and written, and how it stays inside the tree given: see :mod:`._files`.
"""

from __future__ import annotations

import ast
import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import libcst as cst

from ckptguard._code import _names
from ckptguard._code._files import (
    MAX_SOURCE_BYTES,
    SKIP_DIRS,
    Failed,
    Found,
    Skipped,
    Unreadable,
    discover,
    read_source,
    replace_source,
)
from ckptguard._code._findings import CodeError, CodeFinding, CodeReport, CodeSkip, FileResult
from ckptguard._code._fixer import apply_fixes
from ckptguard._code._rules import RULES, Rule
from ckptguard._code._visitor import Site, analyze

__all__ = ["MAX_SOURCE_BYTES", "SKIP_DIRS", "check_file", "check_paths", "check_source"]


# A module can only have findings if it names one of the functions and one of the modules
# (whole words). Most files of a code base do not: they are only syntax-checked (ast, fast).
_LEAF_WORD = re.compile(rb"\b(?:" + b"|".join(n.encode() for n in _names.LEAF_NAMES) + rb")\b")
_ROOT_WORD = re.compile(rb"\b(?:" + b"|".join(n.encode() for n in _names.ROOT_MODULES) + rb")\b")


def _may_have_findings(source: bytes) -> bool:
    return bool(_LEAF_WORD.search(source) and _ROOT_WORD.search(source))


_PYTHON = "{}.{}".format(*sys.version_info[:2])


class UnparsableSource(Exception):
    """The source is not Python ckptguard can analyze (syntax error, bad encoding, too deep)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _check_syntax(source: bytes | str) -> None:
    """Parse with CPython first (an AST only: nothing runs). Its parser has nesting limits, so
    input that could exhaust libcst's native parser's stack never reaches it."""
    try:
        compile(source, "<source>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:  # includes bad encodings and undecodable bytes
        line = exc.lineno if exc.lineno and exc.lineno > 0 else None
        column = exc.offset if line and exc.offset and exc.offset > 0 else None
        raise UnparsableSource(exc.msg, line, column) from None
    except ValueError as exc:  # null bytes
        raise UnparsableSource(str(exc)) from None
    except (MemoryError, RecursionError):
        raise UnparsableSource("too deeply nested to parse") from None


@dataclass(frozen=True)
class SourceResult:
    findings: tuple[CodeFinding, ...]  # every finding in the original source
    fixed_source: bytes | None  # the source after fixing every fixable finding (None: no fix)


def check_source(
    source: bytes | str,
    path: str = "<string>",
    *,
    rules: Collection[Rule] = RULES,
    fix: bool = False,
) -> SourceResult:
    """Findings in one module's source; with ``fix``, also the fixed source.

    Raises :class:`UnparsableSource` when the source is not Python (or too deeply nested to
    analyze), and ``ValueError`` when a fix would not compile (a bug: the caller leaves the
    file unchanged).
    """
    _check_syntax(source)
    data = source.encode() if isinstance(source, str) else source
    if not _may_have_findings(data):
        return SourceResult((), None)
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:  # CPython accepts it: syntax newer than libcst knows
        raise UnparsableSource(
            f"{exc.message} (valid Python, but not understood by libcst)",
            exc.raw_line,
            exc.raw_column + 1,
        ) from None
    try:
        return _analyze(module, path, rules=rules, fix=fix)
    except RecursionError:
        raise UnparsableSource("too deeply nested to analyze") from None


def _analyze(module: cst.Module, path: str, *, rules: Collection[Rule], fix: bool) -> SourceResult:
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)  # freshly parsed: ours
    sites = [s for s in analyze(wrapper) if s.rule in rules]
    findings = tuple(_finding(path, s) for s in sites)
    fixed_source = None
    if fix and any(s.fixable for s in sites):
        fixed = apply_fixes(wrapper.module, sites)
        fixed_source = fixed.bytes
        try:
            compile(fixed_source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"the fixed code would not compile: {exc}") from None
        again = analyze(cst.MetadataWrapper(fixed))
        if any(s.fixable for s in again if s.rule in rules):
            raise ValueError("a fixable finding survived the fix")
    return SourceResult(findings, fixed_source)


def _finding(path: str, site: Site) -> CodeFinding:
    pos = site.position
    return CodeFinding(
        path=path,
        line=pos.start.line,
        column=pos.start.column + 1,
        end_line=pos.end.line,
        end_column=pos.end.column + 1,
        rule=site.rule,
        message=site.message,
        fixable=site.fixable,
    )


def iter_python_files(paths: Sequence[str]) -> Iterator[Found | CodeSkip | CodeError]:
    """Files to check, in a stable order; a CodeSkip for a link not followed; a CodeError
    for a path that cannot be checked (missing, a FIFO or device, a directory not listed)."""
    for item in discover(paths):
        if isinstance(item, Skipped):
            yield CodeSkip(item.path, item.reason)
        elif isinstance(item, Failed):
            yield CodeError(item.path, item.message, hint=item.hint)
        else:
            yield item


def check_paths(
    paths: Sequence[str],
    *,
    rules: Collection[Rule] = RULES,
    fix: bool = False,
    diff: bool = False,
    jobs: int | None = None,
) -> CodeReport:
    """Check (and with ``fix``, rewrite; with ``diff``, only preview) every file under paths,
    in ``jobs`` worker processes (default 1: most files are only byte-filtered, and on a busy
    2-core machine two workers measured no faster than one)."""
    files: list[Found] = []
    errors: list[CodeError] = []
    skipped: list[CodeSkip] = []
    for item in iter_python_files(paths):
        if isinstance(item, CodeError):
            errors.append(item)
        elif isinstance(item, CodeSkip):
            skipped.append(item)
        else:
            files.append(item)
    one = functools.partial(_check_found, rules=frozenset(rules), fix=fix, diff=diff)
    if jobs is None or jobs <= 1 or len(files) < 2:
        results = [one(f) for f in files]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            chunk = max(1, len(files) // (jobs * 8))
            results = list(pool.map(one, files, chunksize=chunk))
    return CodeReport(tuple(results), tuple(errors), tuple(skipped))


def check_file(
    path: str,
    *,
    rules: Collection[Rule] = RULES,
    fix: bool = False,
    diff: bool = False,
    tree: str | None = None,
) -> FileResult:
    """Check one file (found under directory ``tree``, or named by the user when None)."""
    return _check_found(Found(path, tree), rules=rules, fix=fix, diff=diff)


def _check_found(
    found: Found, *, rules: Collection[Rule] = RULES, fix: bool = False, diff: bool = False
) -> FileResult:
    path = found.path
    try:
        source = read_source(found)
    except Unreadable as exc:
        return FileResult(path, error=CodeError(path, exc.message, hint=exc.hint))
    try:
        return _check_read(path, source.data, rules=rules, fix=fix, diff=diff,
                           write=functools.partial(replace_source, source))  # fmt: skip
    finally:
        source.close()


def _check_read(
    path: str,
    data: bytes,
    *,
    rules: Collection[Rule],
    fix: bool,
    diff: bool,
    write: Callable[[bytes], None],
) -> FileResult:
    try:
        result = check_source(data, path, rules=rules, fix=fix or diff)
    except UnparsableSource as exc:
        return FileResult(
            path,
            error=CodeError(
                path,
                f"cannot parse: {exc.message}",
                hint=(
                    "ckptguard code fails closed on code nested this deep; simplify it"
                    if "deeply nested" in exc.message
                    else f"fix the file, or check it with: python -m py_compile {path} (code "
                    f"for a newer Python than {_PYTHON}: run ckptguard code under that Python)"
                ),
                line=exc.line,
                column=exc.column,
            ),
        )
    except ValueError as exc:  # the fix failed its own checks: leave the file alone
        return FileResult(
            path,
            error=CodeError(
                path,
                f"not fixed, left unchanged: {exc}",
                hint=f"this is a bug in ckptguard; check without --fix: ckptguard code {path}",
            ),
        )
    findings = result.findings
    if result.fixed_source is None:
        return FileResult(path, findings)
    if diff:
        return FileResult(path, findings, diff=_unified_diff(path, data, result.fixed_source))
    try:
        write(result.fixed_source)
    except Unreadable as exc:
        return FileResult(path, findings, error=CodeError(path, exc.message, hint=exc.hint))
    except OSError as exc:
        return FileResult(
            path, findings, error=CodeError(path, f"cannot write: {exc.strerror or exc}")
        )
    return FileResult(
        path,
        findings=tuple(x for x in findings if not x.fixable),
        fixed=tuple(x for x in findings if x.fixable),
    )


def _unified_diff(path: str, old: bytes, new: bytes) -> str:
    encoding = cst.parse_module(old).encoding
    lines = difflib.unified_diff(
        old.decode(encoding).splitlines(keepends=True),
        new.decode(encoding).splitlines(keepends=True),
        fromfile=path if os.path.isabs(path) else f"a/{path}",
        tofile=path if os.path.isabs(path) else f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
