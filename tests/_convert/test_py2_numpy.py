"""Python 2 era pickles (protocol 0 and 2): numpy arrays and scalars whose data is a ``str``
(STRING/BINSTRING/SHORT_BINSTRING) convert to tensors bit-identical to what
``numpy.load(..., allow_pickle=True, encoding='latin1')`` reads, and inspect shows them as
arrays (issue 11 item 1). Hostile variants (lying lengths, huge shapes) are clean refusals."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ckptguard
from ckptguard._errors import CheckpointError, ConvertError
from tests import pickleasm as P
from tests.py2pickles import py2_dumps

_NUMPY_CORE_DATA = Path(np.__file__).parent / "_core" / "tests" / "data"
_DTYPES = ["<f8", "<f4", "<f2", "<i2", "<i8", "|u1", "|i1", "|b1", "<c16", "<u4"]


def _arrays(rng: random.Random) -> dict[bytes, Any]:
    """Arrays whose raw bytes are random (mostly not UTF-8), valid non-ASCII UTF-8, or ASCII,
    of many dtypes and layouts, plus numpy scalars. Keys are Python 2 ``str`` (bytes)."""
    out: dict[bytes, Any] = {}
    for i, code in enumerate(_DTYPES):
        dt = np.dtype(code)
        shape = [(3,), (2, 3), (), (0, 4), (4, 1, 2)][i % 5]
        n = int(np.prod(shape)) * dt.itemsize
        kind = i % 3
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(n))
        elif kind == 1:
            raw = (b"\xc3\xa9" * n)[:n]  # valid UTF-8, not ASCII: é
        else:
            raw = bytes(rng.randrange(32, 127) for _ in range(n))
        if code == "|b1":
            raw = bytes(b & 1 for b in raw)
        arr = np.frombuffer(raw, dtype=dt).reshape(shape).copy() if n else np.zeros(shape, dt)
        out[f"a{i}".encode()] = arr
    out[b"fortran"] = np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4) * 1.5)
    out[b"scalar_f8"] = np.float64(-1.25e-300)
    out[b"scalar_i4"] = np.int32(-7)
    out[b"scalar_c8"] = np.complex64(1.5 - 2j)
    out[b"text"] = b"plain ascii"
    return out


def _compare(loaded: Any, ref: Any) -> None:
    assert set(loaded) == set(ref), (sorted(loaded), sorted(ref))
    for k, want in ref.items():
        got = loaded[k]
        if isinstance(want, np.ndarray):
            assert isinstance(got, torch.Tensor), k
            assert tuple(got.shape) == want.shape, k
            assert got.dtype == torch.from_numpy(np.zeros(0, want.dtype)).dtype, k
            assert got.contiguous().numpy().tobytes() == np.ascontiguousarray(want).tobytes(), k
        elif isinstance(want, np.generic):
            assert type(got) in (int, float, complex), k
            assert np.array(got, dtype=want.dtype).tobytes() == want.tobytes(), k
        else:
            assert got == want, k


@pytest.mark.parametrize("protocol", [0, 2])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_py2_numpy_pickle_converts_bit_identical_to_numpy_latin1(
    tmp_path: Path, protocol: int, seed: int
) -> None:
    src = tmp_path / "py2.pkl"
    src.write_bytes(py2_dumps(_arrays(random.Random(seed)), protocol))
    assert b"cnumpy.core.multiarray\n_reconstruct" in src.read_bytes()
    ref = np.load(src, allow_pickle=True, encoding="latin1")
    dst = tmp_path / "out.pt"
    ckptguard.convert(src, dst)
    loaded = torch.load(dst, weights_only=True)  # stock, weights-only
    loaded.pop("__ckptguard__")
    _compare(loaded, ref)


def test_numpys_own_py2_era_pickle_converts_bit_identical() -> None:
    src = _NUMPY_CORE_DATA / "astype_copy.pkl"
    ref = np.load(src, allow_pickle=True, encoding="latin1")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "out.pt"
        ckptguard.convert(src, dst)
        got = torch.load(dst, weights_only=True)
    assert got.numpy().tobytes() == ref.tobytes() and tuple(got.shape) == ref.shape


@pytest.mark.parametrize("protocol", [0, 2])
def test_inspect_shows_py2_arrays_with_dtype_and_shape(tmp_path: Path, protocol: int) -> None:
    src = tmp_path / "py2.pkl"
    arrays = _arrays(random.Random(5))
    src.write_bytes(py2_dumps(arrays, protocol))
    ins = ckptguard.inspect(src)
    assert ins.tree is not None and ins.error is None
    nodes = {it["key"]: it["value"] for it in ins.tree["items"]}
    for key, arr in arrays.items():
        if isinstance(arr, np.ndarray):
            node = nodes[key.decode()]
            assert node["type"] == "tensor" and node["shape"] == list(arr.shape), key
            assert node["bytes"] == arr.nbytes and node["original_type"] == "numpy.ndarray"
    assert ins.tensors == sum(isinstance(a, np.ndarray) for a in arrays.values())


def _py2_array(raw_op: bytes, shape: tuple[int, ...], code: str = "f8") -> bytes:
    """A protocol 2 ndarray pickle (Python 2 layout) whose data opcode is ``raw_op``."""
    dims = b"".join(P.binint(d) for d in shape)
    return (
        P.proto(2)
        + P.glob("numpy.core.multiarray", "_reconstruct")
        + P.glob("numpy", "ndarray")
        + b"K\x00\x85U\x01b\x87R"
        + P.MARK
        + b"K\x01"
        + P.MARK + dims + P.TUPLE
        + P.glob("numpy", "dtype")
        + b"U\x02" + code.encode() + b"K\x00K\x01\x87R"
        + b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + P.NEWFALSE
        + raw_op
        + P.TUPLE
        + P.BUILD
        + P.STOP
    )  # fmt: skip


def _binstring(raw: bytes) -> bytes:
    return b"T" + len(raw).to_bytes(4, "little") + raw


def test_the_hand_built_py2_array_is_what_numpy_reads(tmp_path: Path) -> None:
    raw = bytes(range(200, 224))
    src = tmp_path / "ok.pkl"
    src.write_bytes(_py2_array(_binstring(raw), (3,)))
    ref = np.load(src, allow_pickle=True, encoding="latin1")
    assert ref.tobytes() == raw
    ckptguard.convert(src, tmp_path / "ok.pt")
    assert torch.load(tmp_path / "ok.pt", weights_only=True).numpy().tobytes() == raw


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("data shorter than the shape", _py2_array(_binstring(b"\xff" * 16), (3,))),
        ("data longer than the shape", _py2_array(_binstring(b"\xff" * 32), (3,))),
        ("a huge shape over a few bytes", _py2_array(_binstring(b"\xff" * 8), (2**31 - 1,) * 4)),
        ("a negative dimension", _py2_array(_binstring(b"\xff" * 8), (-1,))),
        ("a STRING whose escapes lie", _py2_array(b"S'\\xff\\xff'\n", (3,))),
    ],
)
def test_lying_py2_arrays_are_clean_refusals(tmp_path: Path, what: str, data: bytes) -> None:
    src = tmp_path / "lie.pkl"
    src.write_bytes(data)
    with pytest.raises(ConvertError, match="numpy array"):
        ckptguard.convert(src, tmp_path / "lie.pt")
    assert not (tmp_path / "lie.pt").exists()
    ins = ckptguard.inspect(src)  # described as opaque, never allocated
    assert ins.tree is not None and ins.tree["type"] == "opaque", what


def test_a_binstring_longer_than_the_file_is_an_error_not_an_allocation(tmp_path: Path) -> None:
    src = tmp_path / "cut.pkl"
    src.write_bytes(_py2_array(b"T\xff\xff\xff\x7f" + b"\x00" * 8, (3,))[:-3])
    with pytest.raises(CheckpointError):
        ckptguard.convert(src, tmp_path / "cut.pt")
    ins = ckptguard.inspect(src)
    assert ins.error is not None and ins.tree is None


def test_py2_text_that_is_not_utf8_is_refused_with_its_reason(tmp_path: Path) -> None:
    src = tmp_path / "latin.pkl"
    src.write_bytes(P.proto(2) + b"}U\x01kU\x04caf\xe9s.")  # {'k': 'caf\xe9'} as Python 2 wrote it
    with pytest.raises(ConvertError, match="not UTF-8 text"):
        ckptguard.convert(src, tmp_path / "latin.pt")
