"""Bounded work: a `safe` verdict means the load finishes in time and memory proportional to
the file, imports no module and changes no class or module (issue 10, item 5).

The hostile samples are in tests/hostile_bounds.py; each is shown to misbehave under the stock
``pickle.loads`` (in subprocesses, with a memory limit and a short timeout) and to be refused
by scan, load and convert.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

import ckptguard
from ckptguard import FileVerdict
from ckptguard._errors import CheckpointError, PolicyError
from ckptguard._pickle import analyze_pickle
from ckptguard._pickle._bounds import CALL_BOUNDS_FILE, call_rules, parse_rule
from ckptguard._policy._data import POLICY_FILE
from ckptguard._policy._toml import parse_simple_toml
from tests import factories as F
from tests.factories import data_pkl_zip
from tests.hostile_bounds import CASES, RANGE, BoundCase, chain, list_dag
from tests.pickleasm import (
    APPENDS,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    SETITEM,
    TUPLE1,
    TUPLE2,
    binint1,
    binunicode,
    call,
    glob,
    long1,
    program,
    ustr,
)

_IDS = [c.name for c in CASES]
_LIVE = [c for c in CASES if c.live]


def _rules(data: bytes) -> set[str]:
    return {f.rule for f in analyze_pickle(data).findings}


# ------------------------------------------------------------------------- the rules as data
def test_every_vetted_global_has_a_call_rule() -> None:
    with open(POLICY_FILE, "rb") as f:
        profiles = tomllib.load(f)["profiles"]
    vetted = {n for p in profiles.values() for n in p["globals"]}
    ruled = {f"{m}.{n}" for m, n in call_rules()}
    assert sorted(vetted - ruled) == [], "vetted globals without a call rule"
    assert sorted(ruled - vetted) == [], "call rules for globals that are not vetted"


def test_call_bounds_data_is_in_the_fast_subset_and_every_entry_has_a_reason() -> None:
    text = Path(CALL_BOUNDS_FILE).read_text(encoding="utf-8")
    assert parse_simple_toml(text) == tomllib.loads(text)
    for name, value in tomllib.loads(text)["calls"].items():
        rule = parse_rule(name, value)
        assert len(rule.reason) > 10, name


@pytest.mark.parametrize("bad", ["free", "x:iterable", "x:nosuchkind | why", "f:callee | why"])
def test_a_malformed_rule_is_a_policy_error(bad: str) -> None:
    with pytest.raises(PolicyError):
        parse_rule("m.f", bad)


# ------------------------------------------------------------------------- hostile samples
@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_the_scan_reports_the_unbounded_call(case: BoundCase) -> None:
    assert case.rule in _rules(case.scanned())


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_scan_load_and_convert_refuse_it(case: BoundCase, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(data_pkl_zip(case.scanned()))
    plain = tmp_path / "model.pkl"
    plain.write_bytes(case.scanned())
    for p in (path, plain):
        rep = ckptguard.scan(p).files[0]
        assert rep.verdict is not FileVerdict.SAFE
        assert case.rule in {f.rule for f in rep.findings}
    with pytest.raises(CheckpointError):
        ckptguard.load(path)
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError):
        ckptguard.convert(path, out)
    assert not out.exists()


_LIVENESS = """
import resource, sys, pickle
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
{prelude}
data = open(sys.argv[1], 'rb').read()
before = set(sys.modules)
try:
    pickle.loads(data)
except MemoryError:
    print('MEMORY-ERROR', flush=True)
    sys.exit(3)
except Exception as exc:
    print('FAILED', type(exc).__name__, flush=True)
print('NEW-MODULES', ' '.join(sorted(set(sys.modules) - before)))
{check}
print('FINISHED', flush=True)
"""
_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def liveness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str]]:
    """Every live case under the stock pickle.loads, all at once (they are meant to hang):
    (return code or None when it was still running at the timeout, stdout)."""
    tmp = tmp_path_factory.mktemp("liveness")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs = {}
    for i, case in enumerate(_LIVE):
        path = tmp / f"case{i}.pkl"
        path.write_bytes(case.build())
        check = ""
        if case.live.startswith("mutates:"):
            check = f"print('MUTATED' if {case.live[8:]} else 'UNCHANGED')"
        code = _LIVENESS.format(prelude=case.prelude, check=check)
        procs[case.name] = subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + _TIMEOUT
    out: dict[str, tuple[int | None, str]] = {}
    for name, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            out[name] = (proc.returncode, stdout.decode())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out[name] = (None, "")
    return out


@pytest.mark.parametrize("case", _LIVE, ids=[c.name for c in _LIVE])
def test_the_stock_loader_really_misbehaves(
    case: BoundCase, liveness: dict[str, tuple[int | None, str]]
) -> None:
    rc, stdout = liveness[case.name]
    kind, _, arg = case.live.partition(":")
    if kind == "hang":  # still running at the timeout, or out of its memory limit
        assert rc is None or "MEMORY-ERROR" in stdout, (rc, stdout)
    elif kind == "crash":
        assert rc is not None and rc < 0, (rc, stdout)
    elif kind == "imports":
        assert rc == 0 and "FINISHED" in stdout, (rc, stdout)
        new = stdout.split("NEW-MODULES", 1)[1].split("\n", 1)[0].split()
        assert set(arg.split(",")) <= set(new), stdout
    else:
        assert kind == "mutates"
        assert "MUTATED" in stdout, (rc, stdout)


# ------------------------------------------------------------------------- linear walks
def test_a_shared_tuple_chain_as_a_key_is_costed_in_linear_time() -> None:
    # 2**90 tuple visits if walked without a memo; the scan is instant
    a = analyze_pickle(program(EMPTY_DICT + chain(90) + binint1(1) + SETITEM))
    assert {f.rule for f in a.findings} == {"pickle-unbounded-key"}


def test_a_small_shared_chain_key_is_fine_and_charged() -> None:
    """2**12 tuple visits per hash: real work, but proportional; the verdict stays clean."""
    data = program(EMPTY_DICT + chain(12) + binint1(1) + SETITEM)
    assert _rules(data) == set()


def test_a_shared_chain_in_recorded_call_arguments_is_folded_once() -> None:
    """_rebuild_tensor_v2 arguments are folded for the readers: a shared chain in them,
    a thousand times, costs the scan one fold (memo), not a thousand."""
    args = chain(60) + TUPLE1
    body = glob("torch._utils", "_rebuild_tensor_v2") + b"q\xf0" + args + b"q\xf1" + b"0" * 2
    body += (b"h\xf0h\xf1R0") * 1000
    a = analyze_pickle(program(body + b"N"))
    assert len(a.calls) == 1000
    assert len({id(args) for _, args in a.calls}) == 1  # one fold, shared by every call


@pytest.mark.parametrize("depth", [199, 5000])
def test_key_nesting(depth: int) -> None:
    from tests.pickleasm import EMPTY_TUPLE

    data = program(EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * depth + binint1(1) + SETITEM)
    assert ("pickle-deep-key" in _rules(data)) is (depth > 200)


def test_an_unhashable_key_deep_in_a_tuple_is_still_malformed() -> None:
    data = program(EMPTY_DICT + EMPTY_LIST + TUPLE1 * 100 + binint1(1) + SETITEM)
    # an operation the real unpickler fails on is an error finding, and the walk goes on
    found = [f for f in analyze_pickle(data).findings if f.rule == "pickle-invalid-operation"]
    assert found and "unhashable" in found[0].message


# ------------------------------------------------------------------------- argument rules
_FINE = {
    "range into a list": call(glob("builtins", "list"), call(RANGE, binint1(10))),
    "deque of a pickled list": call(
        glob("collections", "deque"), EMPTY_LIST + MARK + binint1(1) + APPENDS, binint1(0)
    ),
    "latin1 codec": call(glob("_codecs", "encode"), ustr("x"), ustr("latin1")),
    "numpy type string": call(glob("numpy", "dtype"), ustr("f8"), b"\x89", b"\x88"),
    "numpy (0,) shape": call(
        glob("numpy._core.multiarray", "_reconstruct"),
        glob("numpy", "ndarray"),
        binint1(0) + TUPLE1,
        binunicode("b"),
    ),
    "Fraction from a ratio": call(glob("fractions", "Fraction"), ustr("3/4")),
    "int of a short string": call(glob("builtins", "int"), ustr("12345")),
    "bytes of a small size": call(glob("builtins", "bytes"), binint1(16)),
    "reconstructor with object": call(
        glob("copyreg", "_reconstructor"),
        glob("argparse", "Namespace"),
        glob("builtins", "object"),
        b"N",
    ),
    "randomstate ctor": call(
        glob("numpy.random._pickle", "__randomstate_ctor"),
        ustr("MT19937"),
        glob("numpy.random._pickle", "__bit_generator_ctor"),
    ),
    "set of a pickled list of tuples": call(
        glob("builtins", "set"),
        EMPTY_LIST + MARK + binint1(1) + binint1(2) + TUPLE2 + APPENDS,
    ),
}


@pytest.mark.parametrize("name", sorted(_FINE))
def test_bounded_calls_of_vetted_globals_are_fine(name: str) -> None:
    assert _rules(program(_FINE[name])) == set()


_BAD = {
    "unknown keyword": b"",  # filled below (NEWOBJ_EX)
    "codec name": call(glob("builtins", "str"), ustr("x"), ustr("rot13")),
    "errors handler": call(glob("_codecs", "encode"), ustr("x"), ustr("ascii"), ustr("ignore")),
    "range of a computed bound": call(
        glob("builtins", "tuple"), call(RANGE, call(glob("builtins", "int"), ustr("7")))
    ),
    "iterating a persistent object": call(glob("builtins", "list"), ustr("pid") + b"Q"),
    "huge int to Decimal": call(glob("decimal", "Decimal"), long1(1 << 20000)),
    "huger int to Decimal": call(glob("decimal", "Decimal"), long1(1 << 80000)),
    "str of a list DAG": call(glob("builtins", "str"), list_dag(3)),
    "a type tag called": call(glob("torch", "FloatStorage"), binint1(1)),
    "callee that is not a global": call(
        glob("copyreg", "_reconstructor"),
        glob("builtins", "list"),
        call(glob("builtins", "list"), EMPTY_LIST),
        EMPTY_LIST,
    ),
}
_BAD["unknown keyword"] = (
    glob("builtins", "bytearray")
    + b")"
    + EMPTY_DICT
    + ustr("source")
    + binint1(1)
    + SETITEM
    + ustr("surprise")
    + binint1(1)
    + SETITEM
    + b"\x92"
)


@pytest.mark.parametrize("name", sorted(_BAD))
def test_out_of_bounds_calls_of_vetted_globals_are_errors(name: str) -> None:
    assert "pickle-call-argument" in _rules(program(_BAD[name], protocol=4))


def test_a_callee_is_reported_as_called() -> None:
    a = analyze_pickle(program(_FINE["reconstructor with object"]))
    uses = {f"{g.module}.{g.name}": g.uses for g in a.globals}
    assert ckptguard.Use.CALL in uses["builtins.object"]


# ------------------------------------------------------------------------- side effects
_SIDE_EFFECTS = r"""
import collections, copyreg, importlib, json, sys, types, warnings
warnings.simplefilter("ignore")
import numpy, torch
import ckptguard

def watched(rep):
    objs = [collections, copyreg, torch, numpy, torch.serialization]
    for g in rep.globals:
        try:
            mod = importlib.import_module(g.module)
        except ImportError:
            continue
        objs.append(mod)
        obj = mod
        for part in g.name.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, (type, types.FunctionType, types.ModuleType)):
            objs.append(obj)
    return objs

def snapshot(objs):
    out = {}
    for o in objs:
        d = getattr(o, "__dict__", {})
        out[repr(o)] = {k: id(v) for k, v in list(d.items())}
        if isinstance(o, types.FunctionType):
            out[repr(o)]["<defaults>"] = id(o.__defaults__)
            out[repr(o)]["<kwdefaults>"] = id(o.__kwdefaults__)
    return out

warm, *paths = sys.argv[1:]
ckptguard.load(warm)  # ckptguard's and torch's own lazy imports happen here
result = {}
for p in paths:
    rep = ckptguard.scan(p).files[0]
    objs = watched(rep)  # the modules the file names are imported: that is what it asks for
    modules = set(sys.modules)
    before = snapshot(objs)
    ckptguard.load(p)
    after = snapshot(objs)
    changed = sorted(k for k in before if before[k] != after[k])
    result[p] = {"verdict": str(rep.verdict), "new": sorted(set(sys.modules) - modules),
                 "changed": changed}
print(json.dumps(result))
"""


def test_loading_the_benign_corpus_imports_nothing_and_changes_no_class(tmp_path: Path) -> None:
    files = [
        F.training_checkpoint(tmp_path / "train2.pt", protocol=2),
        F.training_checkpoint(tmp_path / "train4.pt", protocol=4),
        F.numpy1_training_checkpoint(tmp_path),
        F.omegaconf_checkpoint(tmp_path / "omega.pt"),
        F.namespace_checkpoint(tmp_path / "ns.pt"),
        F.legacy_checkpoint(tmp_path / "legacy.pt"),
    ]
    warm = F.state_dict(tmp_path / "warm.pt")
    proc = subprocess.run(
        [sys.executable, "-c", _SIDE_EFFECTS, str(warm), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for path, r in result.items():
        assert r["verdict"] == "safe", path
        assert r["new"] == [], f"{path}: loading it imported {r['new']}"
        assert r["changed"] == [], f"{path}: loading it changed {r['changed']}"


# ------------------------------------------------------------------------- hash collisions
def _dict_of(keys: list[bytes]) -> bytes:
    return program(EMPTY_DICT + MARK + b"".join(k + b"N" for k in keys) + b"u")


@pytest.mark.parametrize(("n", "flagged"), [(200, False), (300, True)])
def test_distinct_keys_sharing_one_hash(n: int, flagged: bool) -> None:
    modulus = (1 << 61) - 1
    data = _dict_of([long1(i * modulus) for i in range(1, n + 1)])
    assert ("pickle-hash-collisions" in _rules(data)) is flagged


def test_many_ordinary_numeric_and_tuple_keys_do_not_collide() -> None:
    keys = [long1(i) for i in range(2000)]
    keys += [b"G" + struct.pack(">d", i / 7) for i in range(2000)]
    keys += [long1(i) + long1(-i) + TUPLE2 for i in range(2000)]
    assert _rules(_dict_of(keys)) == set()


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_bytes_and_bytearray_of_old_protocols_stay_safe(protocol: int, tmp_path: Path) -> None:
    """Protocols 0-2 spell bytes as bytes(_codecs.encode(str, 'latin1')) and bytearray alike:
    the encoded length is known, so the call rule for bytes/bytearray must accept them."""
    import pickle

    data = pickle.dumps({"b": b"\x00\xff" * 40, "ba": bytearray(b"ab" * 40)}, protocol=protocol)
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    report = ckptguard.scan(path)
    assert report.verdict is FileVerdict.SAFE, report
