"""Start-up tricks only on the scan path (tests/scan_path.py declares it once).

A scan of every format, in every output mode, imports exactly the modules of ``SCAN_PATH``;
only those modules assign ``TYPE_CHECKING = False`` or import inside functions to save
start-up time. Everywhere else imports sit at the top of the module, except an import of a
third-party package (torch, numpy, safetensors, libcst: importing ckptguard must not need
them) and the few listed in ``EXEMPT`` with their reason.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import factories as F
from tests.pickleasm import system
from tests.scan_path import SCAN_PATH
from tests.subproc import run_python

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ckptguard"

# (module, imported module): why the import sits in a function outside the scan path.
EXEMPT: dict[tuple[str, str], str] = {
    # import cycles, being broken by issue 13's seams work (t-seams)
    ("ckptguard._load._engine", "ckptguard._load._torch"): "_torch imports torch when loaded",
    ("ckptguard._training._checkpoint", "ckptguard"): "cycle: ckptguard.training <- ckptguard",
    # Every full parser (`ckptguard --help`, a mistyped command) imports every subcommand
    # module: what a command runs is imported when it runs (for `code`: libcst, see
    # test_code_command_does_not_import_libcst_until_run).
    **{
        ("ckptguard._cli._code", name): "a command's machinery, imported when it runs"
        for name in (
            "ckptguard._code._runner",
            "ckptguard._reporters._code",
            "ckptguard._reporters._code_sarif",
            "ckptguard._reporters._human",
        )
    },
    **{
        (cli, name): "a command's machinery, imported when it runs"
        for cli, name in (
            ("ckptguard._cli._convert", "ckptguard._convert"),
            ("ckptguard._cli._convert", "ckptguard._convert._inplace"),
            ("ckptguard._cli._run", "ckptguard._load"),
            ("ckptguard._cli._run", "ckptguard._load._children"),
        )
    },
    # the child-process guard: the start-up half runs in every child interpreter (it must stay
    # light); the loading machinery loads only when the child imports torch
    ("ckptguard._childhook", "ckptguard._load._children"): "child start-up: loaded with torch",
    ("ckptguard._childhook", "ckptguard._load._patch"): "child start-up: loaded with torch",
    **{
        ("ckptguard._load._hook.sitecustomize", name): "runs at every child's start-up"
        for name in (
            "ckptguard._childhook",
            "importlib.abc",
            "importlib.machinery",
            "importlib.util",
        )
    },
    ("ckptguard._convert", "ckptguard._dcp._convert"): (
        "a module-level import would re-enter _load._safe_load during import "
        "(_safe_load -> _convert._restore runs _convert's __init__)"
    ),
    ("ckptguard._dcp._guard", "ckptguard._dcp._reader"): (
        "keeps torch.distributed out of patched()'s import: loaded when a DCP reader is guarded"
    ),
    **{
        (cli, name): "a command's machinery, imported when it runs"
        for cli, name in (
            ("ckptguard._cli._convert", "ckptguard._convert._restore"),
            ("ckptguard._cli._inspect", "ckptguard._dcp._describe"),
            ("ckptguard._cli._inspect", "ckptguard._inspect"),
            ("ckptguard._cli._run", "TYPE_CHECKING = False"),
            ("ckptguard._cli._run", "ckptguard._cli._output"),
            ("ckptguard._cli._run", "ckptguard._policy"),
            ("ckptguard._cli._run", "warnings"),
        )
    },
    # URL scans (ckptguard scan URL): the scan path for remote objects, imported only when a URL
    # is scanned; each backend (http.client, fsspec, Dask) loads when its protocol is met
    **{
        (mod, name): "the scan path for URLs: imported when a URL is scanned"
        for mod, names in (
            (
                "ckptguard._remote",
                (
                    "TYPE_CHECKING = False",
                    "ckptguard._remote._dask",
                    "ckptguard._remote._scan",
                    "ckptguard._results",
                    "ckptguard._scan",
                ),
            ),
            ("ckptguard._remote._dask", ("TYPE_CHECKING = False",)),
            ("ckptguard._remote._fsspec", ("TYPE_CHECKING = False",)),
            ("ckptguard._remote._http", ("TYPE_CHECKING = False", "concurrent.futures")),
            ("ckptguard._remote._options", ("random",)),
            ("ckptguard._remote._prefetch", ("TYPE_CHECKING = False",)),
            (
                "ckptguard._remote._scan",
                (
                    "TYPE_CHECKING = False",
                    "ckptguard._assess",
                    "ckptguard._formats._detect",
                    "ckptguard._remote._fsspec",
                    "ckptguard._remote._http",
                    "ckptguard._remote._prefetch",
                    "ckptguard._scan",
                    "concurrent.futures",
                ),
            ),
            (
                "ckptguard._formats._source",
                (
                    "TYPE_CHECKING = False",
                    "ckptguard._errors",
                    "ckptguard._pickle",
                    "sys",
                    "tempfile",
                ),
            ),
        )
        for name in names
    },
    # ckptguard inspect's describer and renderer move to _inspect/ (issue 13 seams, t-seams)
    ("ckptguard._inspect._describe", "ckptguard._scan"): "moves with the describer (seams)",
    ("ckptguard._cli._inspect", "ckptguard._cli._output"): "the renderer moves (seams)",
    ("ckptguard._cli._inspect", "ckptguard._policy"): "the renderer moves (seams)",
    ("ckptguard._cli._inspect", "ckptguard._errors"): "the renderer moves (seams)",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif node.level:  # relative: from . import x / from ._npy import y
        package = module.split(".")
        if not (PACKAGE / Path(*package[1:]) / "__init__.py").exists():
            package = package[:-1]
        base = ".".join(package[: len(package) - node.level + 1])
        yield f"{base}.{node.module}" if node.module else base
    else:
        for alias in node.names:  # from pkg import submodule: the submodule
            sub = Path(*f"{node.module}.{alias.name}".split(".")[1:])
            is_module = (PACKAGE / f"{sub}.py").is_file() or (PACKAGE / sub).is_dir()
            yield f"{node.module}.{alias.name}" if is_module else node.module or ""


def _third_party(name: str) -> bool:
    top = name.split(".", maxsplit=1)[0]
    return top != "ckptguard" and top not in sys.stdlib_module_names


def start_up_tricks(path: Path) -> list[tuple[str, str]]:
    """(imported module or "TYPE_CHECKING = False", where) for each trick in ``path``."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "TYPE_CHECKING" for t in node.targets
        ):
            found.append(("TYPE_CHECKING = False", f"{module}:{node.lineno}"))
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(node, module):
                    if not _third_party(name):
                        found.append((name, f"{module}:{node.lineno}"))
    return found


def test_start_up_tricks_only_on_the_scan_path() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module in SCAN_PATH:
            continue
        for what, where in start_up_tricks(path):
            if (module, what) not in EXEMPT:
                problems.append(f"{where}: {what}")
    assert not problems, (
        "start-up tricks outside the scan path (tests/scan_path.py): import at the top of the "
        "module (and type names from typing directly):\n" + "\n".join(problems)
    )


def test_every_exemption_is_still_needed() -> None:
    tricks = {
        (_module_name(path), what)
        for path in PACKAGE.rglob("*.py")
        for what, _ in start_up_tricks(path)
    }
    assert not EXEMPT.keys() - tricks, "remove these from EXEMPT: " + str(EXEMPT.keys() - tricks)


def test_the_check_sees_each_trick(tmp_path: Path) -> None:
    path = PACKAGE / "_startup_sample_for_a_test.py"
    assert not path.exists()
    source = (
        "TYPE_CHECKING = False\n"
        "import os\n"
        "def f():\n"
        "    import json\n"
        "    import torch\n"
        "    from ckptguard._scan import scan_file\n"
        "    from . import _gc\n"
    )
    try:
        path.write_text(source)
        assert [what for what, _ in start_up_tricks(path)] == [
            "TYPE_CHECKING = False",
            "json",
            "ckptguard._scan",
            "ckptguard",
        ]
    finally:
        path.unlink()


def _every_format(root: Path) -> Path:
    """A directory holding one file of each format the scan reads (and a few it refuses)."""
    root.mkdir()
    F.state_dict(root / "zip.pt")
    F.legacy_checkpoint(root / "legacy.pt")
    np.save(root / "plain.npy", np.zeros(3))
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(root / "arrays.npz", a=np.zeros(2))
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(root / "m.safetensors"))
    (root / "p.pkl").write_bytes(pickle.dumps({"a": [1, 2.0]}, protocol=0))
    (root / "evil.pkl").write_bytes(system("true"))  # never loaded: scan only parses
    (root / "lfs.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1\nsize 1\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("storages"), io.BytesIO(b""))
    (root / "old.tar").write_bytes(buf.getvalue())
    return root


_IMPORTS_OF_A_SCAN = (
    "import sys; before = set(sys.modules)\n"
    "from ckptguard._cli import main\n"
    "rc = main(['scan', *sys.argv[2:]])\n"
    "new = set(sys.modules) - before\n"
    "ours = sorted(m for m in new if m.split('.')[0] == 'ckptguard')\n"
    "heavy = sorted(m for m in new if m.split('.')[0] in sys.argv[1].split(','))\n"
    "print(__import__('json').dumps([rc, ours, heavy]), file=sys.stderr)\n"
)
# What a scan never imports, whatever it reads (start-up time; torch and numpy never).
HEAVY = ("torch", "numpy", "dataclasses", "typing", "tomllib", "hashlib", "libcst")
MODES = (
    ["-q"],
    ["--json"],
    ["-v", "--jobs", "2"],
    ["--sarif", "out.sarif"],
    # a wildcard for the user's own package: the namespace check reads package metadata
    # (importlib.metadata, which imports typing)
    ["-q", "--allow", "myproject.models.*"],
)


def test_a_scan_of_every_format_in_every_mode_imports_exactly_the_scan_path(
    tmp_path: Path,
) -> None:
    root = _every_format(tmp_path / "ckpts")
    seen: set[str] = set()
    for mode in MODES:
        never = [m for m in HEAVY if not (m == "typing" and "--allow" in mode)]
        proc = run_python("-c", _IMPORTS_OF_A_SCAN, ",".join(never), *mode, str(root), cwd=tmp_path)
        rc, imported, heavy = json.loads(proc.stderr.strip().splitlines()[-1])
        assert rc == 2, proc.stderr  # evil.pkl is dangerous, lfs.pt and old.tar are errors
        assert heavy == [], f"{mode}: a scan imported {heavy}"
        off_path = sorted(set(imported) - set(SCAN_PATH))
        assert not off_path, f"{mode}: not on the scan path (tests/scan_path.py): {off_path}"
        seen |= set(imported)
    unused = sorted(set(SCAN_PATH) - seen)
    assert not unused, f"in SCAN_PATH but no scan imports them: {unused}"


@pytest.mark.parametrize("name", SCAN_PATH)
def test_scan_path_names_modules_that_exist(name: str) -> None:
    rel = Path(*name.split(".")[1:])
    assert (PACKAGE / rel / "__init__.py").is_file() or (PACKAGE / f"{rel}.py").is_file()
