"""Malformed input never gives a traceback, a hang or a wrong `safe` (hypothesis-fuzzed)."""

from __future__ import annotations

import functools
import io
import pickle
import pickletools
import random
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptguard import CheckpointError, FileVerdict, Verdict
from ckptguard._policy import default_policy
from ckptguard._scan import scan_file
from tests import factories as F
from tests.pickleasm import binint2, frame, long1, program, proto

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
def test_arbitrary_bytes_are_an_error_with_a_message_or_a_whole_pickle(
    tmp_path: Path, data: bytes
) -> None:
    """Any bytes at all (hypothesis shrinks towards tiny inputs such as ``b"N."``, a whole and
    honestly safe pickle): never a traceback; an error always says what is wrong."""
    rep = _scan_bytes(tmp_path, data)
    if rep.verdict is FileVerdict.SAFE:  # type: ignore[attr-defined]
        assert rep.format == "pickle"  # type: ignore[attr-defined]
        *_, (last, _, at) = pickletools.genops(data)  # one whole pickle, nothing after it
        assert last.name == "STOP" and at == len(data) - 1
    if rep.verdict is FileVerdict.ERROR:  # type: ignore[attr-defined]
        assert rep.findings and rep.findings[0].message  # type: ignore[attr-defined]


def _tar_header() -> bytes:
    """A 512-byte ustar header that tarfile opens (torch.load's legacy path tries tarfile)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("storages"), io.BytesIO(b""))
    return buf.getvalue()[:512]


# The first bytes of every format ckptguard reads (and of every container a stock loader might
# open), each followed by random bytes below.
MAGIC = {
    "nothing": b"",
    "zip": b"PK\x03\x04",
    "empty-zip": b"PK\x05\x06",
    "npy": b"\x93NUMPY\x01\x00",
    "safetensors": (64).to_bytes(8, "little") + b"{",
    "pickle-2": proto(2),
    "pickle-4-frame": proto(4) + frame(64),
    "legacy-magic": program(long1(0x1950A86A20F9469CFC6C)),
    "legacy-magic-and-protocol": program(long1(0x1950A86A20F9469CFC6C)) + program(binint2(1001)),
    "tar": _tar_header(),
}
SEEDS = range(250)


@pytest.mark.parametrize("magic", MAGIC)
def test_random_bytes_are_never_safe(tmp_path: Path, magic: str) -> None:
    """Random bytes (many seeds and lengths, after each format's magic prefix too): scan never
    calls them safe, and ckptguard.load never loads them."""
    import ckptguard

    verdicts = set()
    for seed in SEEDS:
        rng = random.Random(f"{magic}-{seed}")
        data = MAGIC[magic] + rng.randbytes(rng.choice([16, 64, 600, 5000]))
        path = tmp_path / f"random-{seed}.pt"
        path.write_bytes(data)
        rep = scan_file(path, default_policy())
        assert rep.verdict is not FileVerdict.SAFE, (magic, seed, rep)
        verdicts.add(rep.verdict)
        with pytest.raises(CheckpointError):
            ckptguard.load(path)
    assert verdicts <= {FileVerdict.ERROR, FileVerdict.REVIEW, FileVerdict.DANGEROUS}


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
