"""Any module of the load/DCP/convert layers can be imported first (issue 13).

The import graph has no cycle (tests/test_import_cycles.py), but importing ``a.b.c`` runs the
packages ``a.b`` and ``a`` first: ``ckptguard._load``'s ``__init__`` imports the patch, which
imports the DCP guard. Each module here is imported first in a fresh interpreter, then the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.subproc import run_python

FIRST = (
    "ckptguard._dcp._guard",
    "ckptguard._dcp._reader",
    "ckptguard._dcp._convert",
    "ckptguard._dcp._load",
    "ckptguard._load._window",
    "ckptguard._load._children",
    "ckptguard._load._safe_load",
    "ckptguard._convert._restore",
    "ckptguard._convert._pipeline",
    "ckptguard._childhook",
)
REST = ("ckptguard._load", "ckptguard._convert", "ckptguard.dcp", "ckptguard._childhook")


@pytest.mark.parametrize("first", FIRST)
def test_a_module_imported_first(first: str, tmp_path: Path) -> None:
    program = (
        "import importlib, sys\n"
        f"importlib.import_module({first!r})\n"
        f"for m in {REST!r}: importlib.import_module(m)\n"
        "import ckptguard, ckptguard._load._patch as p, ckptguard._load._window as w\n"
        "assert ckptguard.patched is p.patched and ckptguard.load is not None\n"
        "print('ok')\n"
    )
    done = run_python("-c", program, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_start_up_half_of_the_child_guard_imports_nothing_heavy(tmp_path: Path) -> None:
    program = (
        "import json, sys\n"
        "import ckptguard._childhook\n"
        "ours = [m for m in sys.modules if m.startswith(('ckptguard', 'torch'))]\n"
        "print(json.dumps(sorted(ours)))\n"
    )
    done = run_python("-c", program, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "ckptguard._guardenv" in loaded
    heavy = ("torch", "ckptguard._load", "ckptguard._policy")
    assert not [m for m in loaded if m.startswith(heavy)]
