"""docs/DESIGN.md's module tree names every module and package under src/ckptguard/, and only
those: a module added, renamed or removed without its line is a failure that says which line
to add or remove."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ckptguard"
DESIGN = ROOT / "docs" / "DESIGN.md"

_HEAD = "src/ckptguard/"
# "<2 spaces per level><name><at least one space><purpose>"; a name is a file or a folder/
_LINE = re.compile(r"(?P<indent>(?:  )+)(?P<name>[A-Za-z0-9_.]+/?)\s+(?P<purpose>\S.*)")


def documented(text: str) -> dict[str, str]:
    """path relative to src/ckptguard (folders end in "/") -> its one-line purpose, from the
    fenced block that starts with ``src/ckptguard/``."""
    lines = text.splitlines()
    start = lines.index(_HEAD) + 1  # ValueError: the tree is missing
    entries: dict[str, str] = {}
    folders: list[str] = []  # the folder each indentation level is in
    for number, line in enumerate(lines[start:], start + 1):
        if line.startswith("```"):
            return entries
        m = _LINE.fullmatch(line)
        assert m, f"docs/DESIGN.md:{number}: not '<indent><name>  <purpose>': {line!r}"
        depth = len(m["indent"]) // 2 - 1
        assert depth <= len(folders), f"docs/DESIGN.md:{number}: indented past its folder"
        del folders[depth:]
        path = "".join(folders) + m["name"]
        assert path not in entries, f"docs/DESIGN.md:{number}: {path} is named twice"
        entries[path] = m["purpose"]
        if m["name"].endswith("/"):
            folders.append(m["name"])
    raise AssertionError("docs/DESIGN.md: the module tree's code block is not closed")


def in_tree(package: Path) -> set[str]:
    """Every module, package and data file under ``package``, relative to it."""
    found = set()
    for path in package.rglob("*"):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or rel.suffix in {".pyc", ".typed"}:
            continue
        if path.is_dir():
            found.add(rel.as_posix() + "/")
        elif path.suffix in {".py", ".toml"}:
            found.add(rel.as_posix())
    return found


def _suggested_line(package: Path, rel: str) -> str:
    """The line to add for ``rel``: indented for its folder, the first line of its docstring."""
    depth = rel.rstrip("/").count("/") + 1
    name = rel.rstrip("/").rsplit("/", 1)[-1] + ("/" if rel.endswith("/") else "")
    source = package / rel / "__init__.py" if rel.endswith("/") else package / rel
    doc = None
    if source.suffix == ".py" and source.is_file():
        doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))
    purpose = doc.strip().splitlines()[0] if doc else "<one-line purpose>"
    return f"{'  ' * depth}{name:<{max(25 - 2 * (depth - 1), len(name) + 1)}}{purpose}"


def differences(package: Path, text: str) -> list[str]:
    named = documented(text)
    actual = in_tree(package)
    problems = []
    for rel in sorted(actual - named.keys()):
        parent = rel.rstrip("/").rpartition("/")[0]
        where = f"under `{parent}/`" if parent else "at the top level"
        problems.append(
            f"{rel} is not in docs/DESIGN.md's module tree: add this line {where}:\n"
            f"{_suggested_line(package, rel)}"
        )
    for rel in sorted(named.keys() - actual):
        problems.append(
            f"docs/DESIGN.md's module tree names {rel}, which is not in src/ckptguard: "
            "remove or rename its line"
        )
    return problems


def test_design_doc_names_every_module_and_nothing_else() -> None:
    problems = differences(PACKAGE, DESIGN.read_text(encoding="utf-8"))
    assert not problems, "\n\n".join(problems)


def test_every_line_has_a_purpose() -> None:
    for path, purpose in documented(DESIGN.read_text(encoding="utf-8")).items():
        assert len(purpose.split()) >= 3, f"docs/DESIGN.md: {path}: say what it is for"


def test_the_check_names_the_line_to_add_and_the_line_to_remove(tmp_path: Path) -> None:
    pkg = tmp_path / "ckptguard"
    (pkg / "_dcp").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Top."""\n')
    (pkg / "_dcp" / "__init__.py").write_text("")
    (pkg / "_dcp" / "_scan.py").write_text('"""Scan a DCP checkpoint directory.\n\nMore."""\n')
    text = "\n".join(
        [
            "```",
            _HEAD,
            "  __init__.py            public API: everything",
            "  _dcp/                  distributed checkpoints, read without torch",
            "    __init__.py          re-exports the reader",
            "    _gone.py             a module that was removed",
            "```",
        ]
    )
    assert differences(pkg, text) == [
        "_dcp/_scan.py is not in docs/DESIGN.md's module tree: add this line under `_dcp/`:\n"
        "    _scan.py               Scan a DCP checkpoint directory.",
        "docs/DESIGN.md's module tree names _dcp/_gone.py, which is not in src/ckptguard: "
        "remove or rename its line",
    ]
