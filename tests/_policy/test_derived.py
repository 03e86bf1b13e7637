"""The derived danger list (data/dangerous_derived.toml, written by scripts/gen_dangerous.py):
it covers what the stdlib's source says is dangerous, and every other name of a dangerous
object in the installed numpy/torch namespaces."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest
import tomllib

from ckptguard import Verdict
from ckptguard._policy import default_policy
from ckptguard._policy._data import DERIVED_FILE, shipped, shipped_all
from ckptguard._policy._toml import parse_simple_toml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_dangerous.py"


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_dangerous", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_dangerous", module)
    spec.loader.exec_module(module)
    return module


def _dangerous(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    return default_policy().classify(module, name)[0] is Verdict.DANGEROUS


# The functions the issue names (some exist only on other Python versions: the hand list in
# policy.toml covers them wherever they appear).
NAMED = [
    "typing.ForwardRef._evaluate",
    "typing.ForwardRef",
    "_aix_support._read_cmd_output",
    "_osx_support._read_output",
    "_osx_support._find_build_tool",
    "uuid._get_command_stdout",
    "_interpreters.create",
    "_xxsubinterpreters.create",
    "numpy.matlib.savetxt",
    "numpy.lib._format_impl.open_memmap",
    "numpy.lib._format_impl.write_array",
    "numpy.lib._format_impl.read_array",
    "numpy.savez_compressed",
    "numpy.matlib.savez_compressed",
    "numpy.matlib.testing",
]


@pytest.mark.parametrize("dotted", NAMED)
def test_the_functions_the_issue_names_are_dangerous(dotted: str) -> None:
    assert _dangerous(dotted), dotted


def test_the_derived_file_is_data_with_reasons() -> None:
    text = Path(DERIVED_FILE).read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    assert parse_simple_toml(text) == doc  # inside the fast parser's subset
    entries = doc["dangerous"]["globals"]
    assert len(entries) > 100
    for name, reason in entries.items():
        assert len(reason) > 8, name
        assert name in shipped_all().dangerous_globals


def test_no_derived_entry_is_a_vetted_global() -> None:
    vetted = {n for p in shipped().profiles.values() for n in p}
    derived = tomllib.loads(Path(DERIVED_FILE).read_text(encoding="utf-8"))
    assert not vetted & set(derived["dangerous"]["globals"])


# Modules of the standard library and numpy whose functions reach code execution, processes,
# imports or file writes (a sample that keeps the test fast: the script analyses them all).
_STDLIB_SAMPLE = [
    "typing", "uuid", "_osx_support", "_aix_support", "pipes", "dataclasses", "gettext",
    "pathlib", "warnings", "optparse", "pstats", "collections/__init__", "zoneinfo/_common",
    "zoneinfo/_tzpath", "encodings/__init__", "shlex", "configparser",
]  # fmt: skip


def test_every_function_the_source_analysis_finds_is_dangerous() -> None:
    gen = _gen()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = []
    for rel in _STDLIB_SAMPLE:
        path = stdlib / f"{rel}.py"
        if path.exists():
            name = rel.removesuffix("/__init__").replace("/", ".")
            sources.append((name, path, rel.endswith("__init__")))
    numpy_spec = importlib.util.find_spec("numpy")
    assert numpy_spec is not None and numpy_spec.origin is not None
    numpy_dir = Path(numpy_spec.origin).parent
    for rel in ("lib/_format_impl", "ma/mrecords", "_core/_methods", "_core/_dtype_ctypes"):
        sources.append((f"numpy.{rel.replace('/', '.')}", numpy_dir / f"{rel}.py", False))
    found = gen.analyse(sources)
    assert "typing.ForwardRef._evaluate" in found
    assert "uuid._get_command_stdout" in found
    assert "numpy.lib._format_impl.open_memmap" in found
    vetted = {n for p in shipped().profiles.values() for n in p}
    missed = sorted(n for n in found if n not in vetted and not _dangerous(n))
    assert not missed, f"run scripts/gen_dangerous.py: {missed}"


def test_the_analysis_follows_calls_within_and_across_modules(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "import subprocess as sp\n"
        "def _run(cmd):\n    return sp.check_output(cmd)\n"
        "def helper(x):\n    return _run(x)\n"
        "class Tool:\n    def __init__(self, c):\n        self.go(c)\n"
        "    def go(self, c):\n        helper(c)\n"
        "def harmless(x, open=None):\n    return open(x)\n"
        "def reader(p):\n    return open(p).read()\n"
        "def uses_reader(p):\n    return reader(p)\n"
    )
    (tmp_path / "b.py").write_text("from a import helper as h\ndef outer(x):\n    return h(x)\n")
    found = _gen().analyse([("a", tmp_path / "a.py", False), ("b", tmp_path / "b.py", False)])
    assert found["a._run"].startswith("calls subprocess")
    assert {"a.helper", "a.Tool", "a.Tool.go", "a.Tool.__init__", "b.outer"} <= set(found)
    assert "a.harmless" not in found  # `open` is a parameter there
    assert "a.reader" in found and "a.uses_reader" not in found  # reading is not propagated


_ALIAS_CHECK = r"""
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {scripts!r})
import gen_dangerous as gen
import numpy, numpy.matlib, numpy.lib.format, numpy.ma.mrecords, torch
from ckptguard._policy import default_policy
from ckptguard._verdict import Verdict

policy = default_policy()

def reason(module, name):
    # ckptguard's verdict on the global (module, name); name "" asks about a module itself
    if not name:
        verdict, why = policy._dangerous(module)
        return why if verdict is not None else None
    verdict, why = policy.classify(module, name)
    return why if verdict is Verdict.DANGEROUS else None

from ckptguard._policy._data import shipped_all
danger = gen.dangerous_objects(shipped_all().dangerous_globals)
missing = gen.aliases(reason, danger, ("numpy", "torch"))
print(len(danger), "dangerous objects")
for name in sorted(missing):
    print("MISSING", name, missing[name])
"""


def test_every_name_of_a_dangerous_object_in_numpy_and_torch_is_dangerous() -> None:
    """Walk the attributes of every loaded numpy/torch module (a fresh interpreter: what other
    tests imported does not matter); any attribute that is a dangerous object (by identity
    with a resolved dangerous entry, or by its defining module and name) must be dangerous
    under its own name too."""
    code = _ALIAS_CHECK.format(scripts=str(SCRIPT.parent))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dangerous objects" in proc.stdout
    assert int(proc.stdout.split()[0]) > 100  # the check has something to look for
    missing = [line for line in proc.stdout.splitlines() if line.startswith("MISSING")]
    assert not missing, "run scripts/gen_dangerous.py:\n" + "\n".join(missing[:50])


def test_judging_vetted_globals_never_reads_the_derived_file() -> None:
    code = (
        "from ckptguard._policy import _data, default_policy\n"
        "p = default_policy()\n"
        "assert p.classify('torch._utils', '_rebuild_tensor_v2')[0].value == 'safe'\n"
        "assert p.classify('collections', 'OrderedDict')[0].value == 'safe'\n"
        "assert _data.shipped_all.cache_info().currsize == 0\n"
        "assert p.classify('numpy.matlib', 'savetxt')[0].value == 'dangerous'\n"
        "assert _data.shipped_all.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
