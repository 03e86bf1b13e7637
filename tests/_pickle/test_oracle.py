"""The differential oracle (tests/oracle.py) against ckptguard's pickle layer.

Every global CPython's C unpickler reaches, fed the way a real loader feeds it (``loads``, an
opened file, ``io.BytesIO``, pickles in a row), must be in what ckptguard reports, on the
hostile corpus, the benign corpus and mutated real checkpoints (byte flips, FRAME edits,
truncation, splices). Where ckptguard's verdict is not ``error``, every feeding mode must read
the same pickles and reach the same globals in the same order.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckptguard
from ckptguard import FileVerdict
from ckptguard._errors import CheckpointError, PickleError
from ckptguard._formats._detect import _read_pickles
from ckptguard._pickle import DEFAULT_LIMITS
from ckptguard._verdict import Severity
from tests import factories as F
from tests.hostile import CASES
from tests.hostile_pickle import SAMPLES
from tests.oracle import MODES, Oracle, Reading, read_all, unreported
from tests.pickleasm import EMPTY_DICT, NONE, STOP, frame, glob, proto

LEGACY_LOADS = 5  # torch's legacy format: five pickles, then raw storages


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    o = Oracle()
    yield o
    o.close()


def _defaults(tmp_path: Path) -> str:
    f = tmp_path / "defaults.toml"
    f.write_text("")
    return str(f)


def _scanned(path: Path, tmp_path: Path) -> tuple[set[tuple[str, str]], FileVerdict]:
    rep = ckptguard.scan(path, policy=_defaults(tmp_path)).files[0]
    return {(g.module, g.name) for g in rep.globals}, rep.verdict


# ------------------------------------------------------------------ the oracle itself


def test_the_oracle_records_globals_without_importing_or_calling_them(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    data = next(c for c in CASES if c.name == "os.system p2").build(str(marker))
    readings = read_all(data)
    for mode in MODES:
        assert readings[mode].globals == [("os", "system")], mode
        assert readings[mode].loads == 1 and readings[mode].error is None
    assert not marker.exists()


def test_the_oracle_catches_a_scanner_that_misses_a_global() -> None:
    data = pickle.dumps([OrderedDict(a=1), Fraction(1, 3)], protocol=2)
    readings = read_all(data).values()
    assert (
        unreported(readings, {("collections", "OrderedDict"), ("fractions", "Fraction")}) == set()
    )
    assert unreported(readings, {("collections", "OrderedDict")}) == {("fractions", "Fraction")}


def test_the_oracle_sees_what_io_bytesio_reads_differently() -> None:
    """The feeding modes really differ: a FRAME that cuts a string hides a payload from
    pickle.loads that io.BytesIO reaches (the oracle would be blind without its modes)."""
    sample = next(s for s in SAMPLES if s.name.startswith("frame cuts a string"))
    readings = read_all(sample.build("/nonexistent/PWNED"))
    assert readings["loads"].globals == []
    assert readings["bytesio"].globals == [("os", "system")]


# ------------------------------------------------------------------ ckptguard's pickle layer


def _pickle_layer(data: bytes) -> tuple[set[tuple[str, str]], bool, str]:
    """What ckptguard's scan reports for ``data`` read as pickles (analyze_pickle, pickles in a
    row, the legacy reader): (globals, is the verdict an error, format)."""
    try:
        extracted = _read_pickles(data, data[:4096], DEFAULT_LIMITS)
    except CheckpointError as err:
        partial = err.partial if isinstance(err, PickleError) else ()
        return {(g.module, g.name) for g in partial}, True, err.format or "?"
    found = {(g.module, g.name) for s in extracted.pickles for g in s.analysis.globals}
    findings = [f for s in extracted.pickles for f in s.analysis.findings]
    findings += extracted.findings
    error = any(f.severity is Severity.ERROR for f in findings)
    return found, error, extracted.format


def _same_reading(readings: dict[str, Reading], loads: int | None) -> None:
    """Every feeding mode read the same pickles and reached the same globals (recorders can
    make a load fail where a real object would not, e.g. STACK_GLOBAL of a call's result: then
    every mode fails at the same place)."""
    seq = {m: (r if loads is None else r.first(loads)) for m, r in readings.items()}
    assert seq["file"].per_load == seq["bytesio"].per_load, seq
    assert seq["file"].loads == seq["bytesio"].loads, seq
    assert (seq["file"].error is None) == (seq["bytesio"].error is None), seq
    assert seq["loads"].per_load[:1] == seq["bytesio"].per_load[:1], seq
    assert (seq["loads"].error is None) == (seq["bytesio"].loads >= 1), seq


def _check(oracle: Oracle, data: bytes, *, sequence: bool) -> None:
    found, error, fmt = (
        _pickle_layer(data) if sequence else _single(data)
    )  # a zip record is read with one load
    readings = oracle.read(data, sequence=sequence)
    loads = LEGACY_LOADS if fmt == "pytorch-legacy" else None
    if loads is not None:
        readings = {m: r.first(loads) for m, r in readings.items()}
    missed = unreported(readings.values(), found)
    assert not missed, f"the C unpickler reaches {missed}, ckptguard reported {found}"
    if not error:
        _same_reading(readings, loads)


def _single(data: bytes) -> tuple[set[tuple[str, str]], bool, str]:
    from ckptguard._pickle import analyze_pickle

    try:
        a = analyze_pickle(data)
    except PickleError as err:
        return {(g.module, g.name) for g in err.partial}, True, "pickle"
    error = any(f.severity is Severity.ERROR for f in a.findings)
    return {(g.module, g.name) for g in a.globals}, error, "pickle"


# ------------------------------------------------------------------ corpora


@pytest.mark.parametrize(
    "case", [*CASES, *SAMPLES], ids=[c.name for c in CASES] + [s.name for s in SAMPLES]
)
def test_every_global_of_the_hostile_corpus_is_reported(
    case: object, oracle: Oracle, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    data = case.build(str(marker))  # type: ignore[attr-defined]
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    found, verdict = _scanned(path, tmp_path)
    readings = oracle.read(data, sequence=True)
    missed = unreported(readings.values(), found)
    assert not missed, f"the C unpickler reaches {missed}, scan reported {found}"
    assert verdict is not FileVerdict.SAFE
    _check(oracle, data, sequence=True)
    assert not marker.exists()


def _rich(n: int) -> object:
    shared = [1, 2, "shared"]
    return {
        "od": OrderedDict(a=1, b=[1.5, -2, 2**70, "é\u2603"]),
        "count": Counter("hello"),
        "frac": Fraction(3, 7),
        "sets": ({1, 2}, frozenset({"x"})),
        "bytes": (b"\x00\xff" * 3, bytearray(b"ab")),
        "complex": 1 + 2j,
        "shared": (shared, shared),
        "big": ["w" * 50 for _ in range(n)],
        "floats": [0.1 * i for i in range(n)],
    }


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bool]]:
    """name -> (the bytes a loader unpickles, read as pickles in a row?)."""
    tmp = tmp_path_factory.mktemp("benign")
    out: dict[str, tuple[bytes, bool]] = {}
    for protocol in range(6):
        out[f"plain protocol {protocol}"] = (pickle.dumps(_rich(40), protocol=protocol), True)
    out["protocol 4 with several frames"] = (pickle.dumps(_rich(3000), protocol=4), True)
    out["legacy torch file"] = (F.legacy_checkpoint(tmp / "legacy.pt").read_bytes(), True)
    zips = {
        "state dict": F.state_dict(tmp / "sd.pt"),
        "training checkpoint p2": F.training_checkpoint(tmp / "t2.pt"),
        "training checkpoint p4": F.training_checkpoint(tmp / "t4.pt", protocol=4),
        "namespace checkpoint": F.namespace_checkpoint(tmp / "ns.pt"),
        "omegaconf checkpoint": F.omegaconf_checkpoint(tmp / "oc.pt"),
    }
    for name, path in zips.items():
        with zipfile.ZipFile(path) as z:
            member = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            out[f"{name} data.pkl"] = (z.read(member), False)
    return out


_BENIGN = [
    *(f"plain protocol {p}" for p in range(6)),
    "protocol 4 with several frames",
    "legacy torch file",
    "state dict data.pkl",
    "training checkpoint p2 data.pkl",
    "training checkpoint p4 data.pkl",
    "namespace checkpoint data.pkl",
    "omegaconf checkpoint data.pkl",
]


@pytest.mark.parametrize("name", _BENIGN)
def test_the_benign_corpus_reads_the_same_everywhere(
    name: str, benign: dict[str, tuple[bytes, bool]], oracle: Oracle
) -> None:
    data, sequence = benign[name]
    found, error, _ = _pickle_layer(data) if sequence else _single(data)
    assert not error
    assert found  # every seed uses globals: the comparison is not vacuous
    _check(oracle, data, sequence=sequence)


# ------------------------------------------------------------------ mutated checkpoints


def _boundaries(data: bytes) -> list[int]:
    try:
        return [pos for _, _, pos in pickletools.genops(data)]
    except Exception:
        return [0]


def _mutate(draw: Any, seeds: dict[str, tuple[bytes, bool]]) -> tuple[bytes, bool]:
    name = draw(st.sampled_from(sorted(seeds)))
    data, sequence = seeds[name]
    kind = draw(st.sampled_from(["flip", "frame", "truncate", "splice"]))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out), sequence
    if kind == "truncate":
        return data[: draw(st.integers(1, len(data) - 1))], sequence
    if kind == "frame":
        frames = [i for i in _boundaries(data) if data[i] == 0x95]
        if frames and draw(st.booleans()):  # a frame that lies about its length
            at = draw(st.sampled_from(frames))
            (n,) = struct.unpack_from("<Q", data, at + 1)
            n = max(0, n + draw(st.integers(-12, 12)))
            return data[: at + 1] + struct.pack("<Q", n) + data[at + 9 :], sequence
        at = draw(st.sampled_from(_boundaries(data)))  # a new frame at an opcode boundary
        n = draw(st.integers(0, 40))
        return data[:at] + frame(n) + data[at:], sequence
    other, _ = seeds[draw(st.sampled_from(sorted(seeds)))]
    i = draw(st.sampled_from(_boundaries(data)))
    j = draw(st.sampled_from(_boundaries(other)))
    return data[:i] + other[j:], sequence


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_checkpoints_never_reach_an_unreported_global(
    data: st.DataObject, benign: dict[str, tuple[bytes, bool]], oracle: Oracle
) -> None:
    seeds = {k: v for k, v in benign.items() if k != "protocol 4 with several frames"}
    mutated, sequence = _mutate(data.draw, seeds)
    _check(oracle, mutated, sequence=sequence)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_frames_of_a_large_pickle_never_reach_an_unreported_global(
    data: st.DataObject, benign: dict[str, tuple[bytes, bool]], oracle: Oracle
) -> None:
    """Frames of 64 KiB: past the C unpickler's 8 KiB prefetch, an opened file reads them in
    one piece like io.BytesIO does."""
    seeds = {"big": benign["protocol 4 with several frames"]}
    mutated, sequence = _mutate(data.draw, seeds)
    _check(oracle, mutated, sequence=sequence)


def test_a_frame_that_lies_is_an_error_with_a_finding_naming_it() -> None:
    data = pickle.dumps(_rich(40), protocol=4)
    (n,) = struct.unpack_from("<Q", data, 3)
    lying = data[:3] + struct.pack("<Q", n - 7) + data[11:]
    found, error, _ = _pickle_layer(lying)
    assert error and ("collections", "OrderedDict") in found
    with pytest.raises(PickleError, match="FRAME"):
        from ckptguard._pickle._tree import build_tree

        build_tree(lying)
    readings = read_all(lying)
    assert readings["bytesio"].error is not None  # the modes really differ on it
    assert readings["loads"].error is None


def test_pickles_after_a_frame_tail_are_still_reported(oracle: Oracle) -> None:
    """A pickle whose STOP leaves most of its small FRAME unread, then another pickle right
    after the STOP: an opened file reads that frame in place (peek) and starts the next pickle
    just after the STOP, reaching os.system. The frame-tail finding must not end the reading
    of pickles in a row there."""
    lying = proto(4) + frame(846) + EMPTY_DICT + STOP
    data = lying + glob("os", "system") + STOP + (NONE + STOP) * 600
    found, error, _ = _pickle_layer(data)
    assert error and ("os", "system") in found
    _check(oracle, data, sequence=True)
