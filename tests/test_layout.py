"""tests/ mirrors src/: tests/X/test_Y.py tests src/ckptguard/X/Y.py or the package X.

Tests of top-level modules (src/ckptguard/_scan.py) and of the public API sit in tests/ itself.
The only other folders are the shared-helper locations named in docs/DESIGN.md ("Tests").
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"

# Folders under tests/ that mirror no package: inputs and scripts, never test modules.
HELPER_DIRS = (
    "tests/gpu",  # scripts a GPU machine runs by hand (CUDA RNG checks)
    "tests/_code/golden",  # `ckptguard code` inputs and expected outputs
    "tests/_code/fixture_project",  # a small application `ckptguard code` checks and fixes
)


def _is_helper(rel: str) -> bool:
    return any(rel == h or rel.startswith(h + "/") for h in HELPER_DIRS)


def misplaced(root: Path) -> list[str]:
    """Problems with the layout of ``root``'s tests/ against ``root``'s src/ckptguard/."""
    tests, package = root / "tests", root / "src" / "ckptguard"
    problems = []
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder.parts and not (package / folder / "__init__.py").is_file():
            problems.append(
                f"{path.relative_to(root)}: src/ckptguard/{folder.as_posix()} is no package; "
                "move it to the folder of the package it tests"
            )
    folders = {p.parent for p in tests.rglob("*.py") if "__pycache__" not in p.parts} - {tests}
    for folder in sorted(folders):
        rel = folder.relative_to(root).as_posix()
        if _is_helper(rel):
            continue
        if not (package / folder.relative_to(tests) / "__init__.py").is_file():
            problems.append(
                f"{rel}/ mirrors no package of src/ckptguard: move its modules to the folder of "
                "the package they test, or add it to HELPER_DIRS (tests/test_layout.py) and to "
                "docs/DESIGN.md's Tests section"
            )
        elif not (folder / "__init__.py").is_file():
            # tests/_dcp/test_scan.py and tests/test_scan.py share a basename: as packages,
            # pytest imports them under distinct names
            problems.append(f"{rel}/ needs an empty __init__.py")
    return problems


def test_tests_mirror_src() -> None:
    problems = misplaced(ROOT)
    assert not problems, "tests/X/ must mirror src/ckptguard/X/:\n" + "\n".join(problems)


def test_helper_locations_exist_hold_no_tests_and_are_documented() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    for helper in HELPER_DIRS:
        folder = ROOT / helper
        assert folder.is_dir(), f"{helper} is in HELPER_DIRS but does not exist"
        assert not list(folder.rglob("test_*.py")), f"{helper} holds test modules"
        assert f"`{helper}/`" in design, f"docs/DESIGN.md's Tests section must name `{helper}/`"


def test_the_rule_reports_each_kind_of_misplacement(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "ckptguard"
    for sub in ("", "_pickle"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").touch()
    for rel in (
        "tests/test_scan.py",  # top level: fine
        "tests/_pickle/__init__.py",
        "tests/_pickle/test_vm.py",  # mirrors a package: fine
        "tests/_nowhere/__init__.py",
        "tests/_nowhere/test_x.py",  # no such package
        "tests/_pickle/deep/helper.py",  # no such package, not a helper location
        "tests/gpu/check.py",  # a documented helper location: fine
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    assert misplaced(tmp_path) == [
        "tests/_nowhere/test_x.py: src/ckptguard/_nowhere is no package; move it to the folder "
        "of the package it tests",
        *[
            f"tests/{d}/ mirrors no package of src/ckptguard: move its modules to the folder of "
            "the package they test, or add it to HELPER_DIRS (tests/test_layout.py) and to "
            "docs/DESIGN.md's Tests section"
            for d in ("_nowhere", "_pickle/deep")
        ],
    ]
    (tmp_path / "tests/_pickle/__init__.py").unlink()
    assert "tests/_pickle/ needs an empty __init__.py" in misplaced(tmp_path)
