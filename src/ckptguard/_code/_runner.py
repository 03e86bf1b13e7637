"""Walk paths, check each Python file, optionally fix it (atomically) or diff the fix.

Files named on the command line are always checked; directories are walked for ``*.py`` files,
skipping VCS, virtualenv, cache and build directories (and any directory holding a
``pyvenv.cfg``). A file that cannot be read or parsed is an error result, never "clean".
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from ckptguard._code._fixer import apply_fixes
from ckptguard._code._model import CodeError, CodeFinding, CodeReport, FileResult
from ckptguard._code._rules import RULES, Rule
from ckptguard._code._visitor import Site, analyze

SKIP_DIRS = frozenset(
    {
        ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pytest_cache",
        ".ruff_cache", ".svn", ".tox", ".venv", "__pycache__", "__pypackages__", "_build",
        "buck-out", "build", "dist", "node_modules", "site-packages", "venv",
    }
)  # fmt: skip


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

    Raises ``libcst.ParserSyntaxError`` when the source is not Python, and ``ValueError`` when
    a fix would not compile (a bug: the caller leaves the file unchanged).
    """
    module = cst.parse_module(source)
    wrapper = cst.MetadataWrapper(module)
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


def iter_python_files(paths: Sequence[str]) -> Iterator[str | CodeError]:
    """Files to check, in a stable order; a CodeError for a path that does not exist."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path)
        elif os.path.isfile(path):
            yield path
        else:
            yield CodeError(
                path,
                "no such file or directory",
                hint="check the path; ckptguard code takes Python files and directories",
            )


def _walk(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def check_paths(
    paths: Sequence[str],
    *,
    rules: Collection[Rule] = RULES,
    fix: bool = False,
    diff: bool = False,
) -> CodeReport:
    """Check (and with ``fix``, rewrite; with ``diff``, only preview) every file under paths."""
    files: list[FileResult] = []
    errors: list[CodeError] = []
    for item in iter_python_files(paths):
        if isinstance(item, CodeError):
            errors.append(item)
        else:
            files.append(check_file(item, rules=rules, fix=fix, diff=diff))
    return CodeReport(tuple(files), tuple(errors))


def check_file(
    path: str, *, rules: Collection[Rule] = RULES, fix: bool = False, diff: bool = False
) -> FileResult:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileResult(path, error=CodeError(path, f"cannot read: {exc.strerror or exc}"))
    try:
        result = check_source(data, path, rules=rules, fix=fix or diff)
    except cst.ParserSyntaxError as exc:
        return FileResult(path, error=_parse_error(path, data, exc))
    except UnicodeDecodeError as exc:
        return FileResult(path, error=CodeError(path, f"cannot decode: {exc.reason}"))
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
        _write_atomically(Path(path), result.fixed_source)
    except OSError as exc:
        return FileResult(
            path, findings, error=CodeError(path, f"cannot write: {exc.strerror or exc}")
        )
    return FileResult(
        path,
        findings=tuple(x for x in findings if not x.fixable),
        fixed=tuple(x for x in findings if x.fixable),
    )


def _parse_error(path: str, data: bytes, exc: cst.ParserSyntaxError) -> CodeError:
    """Python's own message and position when it rejects the file too (libcst's are rougher);
    compiling to an AST only parses, nothing runs."""
    message, line, column = exc.message, exc.raw_line, exc.raw_column + 1
    try:
        compile(data, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as syntax:
        message, line, column = syntax.msg, syntax.lineno or line, syntax.offset or column
    except ValueError:  # null bytes
        message = "source contains null bytes"
    else:  # Python accepts it, libcst does not (newer syntax than libcst knows)
        message = f"{message} (valid Python, but not understood by libcst)"
    return CodeError(
        path,
        f"cannot parse: {message}",
        hint=f"fix the syntax error, or check it with: python -m py_compile {path}",
        line=line,
        column=column,
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


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace path's content in one step (a temporary file in the same directory, then
    os.replace), keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ckptguard", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
