"""Malformed input never gives a traceback, a hang or a wrong `safe` (hypothesis-fuzzed)."""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptguard import FileVerdict, Verdict
from ckptguard._policy import default_policy
from ckptguard._scan import scan_file
from tests import factories as F

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@functools.lru_cache(maxsize=1)
def _originals() -> dict[str, bytes]:
    """Real checkpoints to damage (a plain function, not a fixture: hypothesis would print
    the whole dict with every failing example)."""
    d = Path(tempfile.mkdtemp(prefix="ckptguard-fuzz-"))
    return {
        "zip": F.training_checkpoint(d / "t.pt").read_bytes(),
        "zip-deflated": _deflated(F.state_dict(d / "s.pt").read_bytes()),
        "legacy": F.legacy_checkpoint(d / "l.pt").read_bytes(),
        "pickle": F.plain_pickle(
            d / "p.pkl", {"a": [1, 2.0, "x"], "b": (None, True)}, 2
        ).read_bytes(),
    }


def _deflated(data: bytes) -> bytes:
    """The same archive with every member deflated (torch reads both)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    return buf.getvalue()


KINDS = ["zip", "zip-deflated", "legacy", "pickle"]


class _VettedOnly(pickle.Unpickler):
    """An unpickler that imports only what ckptguard's shipped policy calls safe."""

    def find_class(self, module: str, name: str) -> object:
        verdict, reason = default_policy().classify(module, name)
        if verdict is not Verdict.SAFE:
            raise pickle.UnpicklingError(f"{module}.{name} is not vetted: {reason}")
        return super().find_class(module, name)


class _VettedPickleModule:
    """A pickle_module for torch.load that enforces the vetted profiles."""

    Unpickler = _VettedOnly
    UnpicklingError = pickle.UnpicklingError
    __name__ = "vetted_pickle"

    @staticmethod
    def load(f: object, **kw: object) -> object:
        return _VettedOnly(f, **kw).load()  # type: ignore[arg-type]


def _torch_accepts(kind: str, data: bytes, tmp: Path) -> None:
    """Oracle: what ckptguard calls safe, PyTorch loads (raises if not) with an unpickler that
    imports only the vetted globals; for a plain pickle, that unpickler alone."""
    import torch

    if kind == "pickle":
        _VettedOnly(io.BytesIO(data)).load()
        return
    path = tmp / "oracle.pt"
    path.write_bytes(data)
    torch.load(path, weights_only=False, pickle_module=_VettedPickleModule)  # type: ignore[arg-type]


def _scan_bytes(tmp: Path, data: bytes, name: str = "fuzz.pt") -> object:
    path = tmp / name
    path.write_bytes(data)
    return scan_file(path, default_policy())


def _oracle_globals(pickle_bytes: bytes) -> set[str]:
    """Every global a pickle names, as listed by pickletools (oracle for tests only)."""
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(pickle_bytes):
        if op.name in {"GLOBAL", "INST"}:
            found.add(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str):
            strings.append(arg)
    return found


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_are_never_safe(tmp_path: Path, data: bytes) -> None:
    rep = _scan_bytes(tmp_path, data)
    # A random blob may happen to be a valid tiny pickle (e.g. b"N."), which is honestly safe;
    # anything else must be an error with a message.
    if rep.verdict is FileVerdict.SAFE:  # type: ignore[attr-defined]
        assert rep.format == "pickle"  # type: ignore[attr-defined]
    if rep.verdict is FileVerdict.ERROR:  # type: ignore[attr-defined]
        assert rep.findings and rep.findings[0].message  # type: ignore[attr-defined]


@FUZZ
@given(kind=st.sampled_from(KINDS), frac=st.floats(0.0, 0.999))
def test_truncated_checkpoints_are_errors(tmp_path: Path, kind: str, frac: float) -> None:
    data = _originals()[kind]
    cut = data[: int(len(data) * frac)]
    rep = _scan_bytes(tmp_path, cut)
    assert rep.verdict is FileVerdict.ERROR, rep  # type: ignore[attr-defined]
    assert rep.findings[0].message  # type: ignore[attr-defined]


@FUZZ
@given(kind=st.sampled_from(KINDS), pos=st.integers(0), bit=st.integers(0, 7))
def test_bit_flips_never_crash_and_safe_means_torch_loads_it(
    tmp_path: Path, kind: str, pos: int, bit: int
) -> None:
    data = bytearray(_originals()[kind])
    pos %= len(data)
    data[pos] ^= 1 << bit
    rep = _scan_bytes(tmp_path, bytes(data))
    if rep.verdict is FileVerdict.ERROR:  # type: ignore[attr-defined]
        assert rep.findings[0].message  # type: ignore[attr-defined]
    if rep.verdict is not FileVerdict.SAFE:  # type: ignore[attr-defined]
        return
    # Called safe: PyTorch's weights-only loader must load it ...
    _torch_accepts(kind, bytes(data), tmp_path)
    # ... and every global the (possibly altered) pickles name must be vetted.
    policy = default_policy()
    if kind.startswith("zip"):
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
            pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        names = _oracle_globals(pkl)
    elif kind == "pickle":
        names = _oracle_globals(bytes(data))
    else:  # legacy: five pickles in a row, then raw storage bytes
        stream = io.BytesIO(bytes(data))
        names = set()
        for _ in range(5):
            start = stream.tell()
            ops = list(pickletools.genops(stream))
            names |= _oracle_globals(bytes(data[start : stream.tell()]))
            assert ops
    for name in names:
        module, _, attr = name.rpartition(".")
        assert policy.classify(module, attr)[0] is Verdict.SAFE, name


@pytest.mark.parametrize("kind", KINDS)
def test_the_originals_are_safe_and_torch_loads_them(tmp_path: Path, kind: str) -> None:
    """Guards the fuzz tests: unaltered inputs scan safe and satisfy the oracle."""
    original = _originals()[kind]
    assert _scan_bytes(tmp_path, original).verdict is FileVerdict.SAFE  # type: ignore[attr-defined]
    _torch_accepts(kind, original, tmp_path)
