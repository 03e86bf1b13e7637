"""Python 2 .npy headers (``'shape': (2L, 3L)``): ckptguard accepts exactly what numpy's header
parser accepts after removing the long suffix, and nothing it could read differently
(issue 11 item 1). Differential against numpy.lib.format.read_array_header_1_0/2_0 on
generated and mutated headers."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

from ckptguard import scan
from ckptguard._errors import CorruptCheckpointError
from ckptguard._formats._npy import _parse_header, read_npy
from ckptguard._pickle import DEFAULT_LIMITS

_NUMPY_DATA = Path(np.__file__).parent / "lib" / "tests" / "data"


def _npy(header: str, body: bytes, major: int = 1) -> bytes:
    raw = header.encode("latin-1")
    size = len(raw).to_bytes(2 if major == 1 else 4, "little")
    return npformat.MAGIC_PREFIX + bytes([major, 0]) + size + raw + body


def _py2_header(descr: str, fortran: bool, shape: tuple[int, ...]) -> str:
    dims = ", ".join(f"{d}L" for d in shape)
    if len(shape) == 1:
        dims += ","
    return (
        f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': ({dims}), }}".ljust(70) + "\n"
    )


def _numpy_header(data: bytes, major: int) -> tuple[object, ...] | None:
    fp = io.BytesIO(data)
    try:
        npformat.read_magic(fp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if major == 1:
                return tuple(npformat.read_array_header_1_0(fp))
            return tuple(npformat.read_array_header_2_0(fp))
    except Exception:
        return None


def _ours(data: bytes) -> bool:
    try:
        ex = read_npy(data, "a.npy", DEFAULT_LIMITS)
    except CorruptCheckpointError:
        return False
    return not any(f.rule in ("npy-header", "npy-dtype") for f in ex.findings)


def test_numpys_own_python2_file_is_safe() -> None:
    path = _NUMPY_DATA / "win64python2.npy"
    assert b"(2L,)" in path.read_bytes()
    report = scan(path)
    assert str(report.files[0].verdict) == "safe"


@pytest.mark.parametrize("major", [1, 2])
@pytest.mark.parametrize("shape", [(2,), (2, 3), (), (0, 5), (1, 1, 1)])
def test_python2_long_suffix_header_reads_like_numpy(major: int, shape: tuple[int, ...]) -> None:
    header = _py2_header("<i8", False, shape)
    body = bytes(8 * int(np.prod(shape)))
    data = _npy(header, body, major)
    assert _numpy_header(data, major) == (shape, False, np.dtype("<i8"))
    assert _ours(data)
    assert read_npy(data, "a.npy", DEFAULT_LIMITS).findings == ()


def test_version_3_header_with_long_suffix_is_refused_like_numpy() -> None:
    data = _npy(_py2_header("<i8", False, (2,)), bytes(16), 3)
    assert not _ours(data)


@pytest.mark.parametrize(
    "shape_text",
    ["(2 L,)", "(0x2L,)", "(2.0L,)", "(2LL,)", "(2L L,)", "(2l,)", "(L,)", "(2L,) L", "(2L,"],
)
def test_suffixes_ckptguard_does_not_read_exactly_are_refused(shape_text: str) -> None:
    header = f"{{'descr': '<i8', 'fortran_order': False, 'shape': {shape_text}, }}".ljust(70)
    data = _npy(header + "\n", bytes(16))
    assert not _ours(data)


def test_huge_shape_with_long_suffix_is_a_clean_size_error() -> None:
    header = _py2_header("<f8", False, (10**18, 10**18))
    data = _npy(header, bytes(16))
    ex = read_npy(data, "a.npy", DEFAULT_LIMITS)
    assert [f.rule for f in ex.findings] == ["npy-size"]


_MUTATIONS = ["L", "l", " ", "0", "9", ",", "(", ")", "\n", "#", "'", "\\", "\t", "x", ".", "LL"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(["<i8", "<f4", "|u1", "|b1", "<c16", ">i4"]),
    st.booleans(),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from(_MUTATIONS), st.booleans())),
    st.sampled_from([1, 2]),
)
@example("<i8", False, (2, 3), [], 1)
def test_py2_header_mutations_agree_with_numpy(
    descr: str,
    fortran: bool,
    shape: tuple[int, ...],
    edits: list[tuple[int, str, bool]],
    major: int,
) -> None:
    """Whenever ckptguard accepts a header, numpy reads it to the same shape, order and dtype;
    an unmutated Python 2 header is accepted by both."""
    text = _py2_header(descr, fortran, shape)
    for pos, piece, replace in edits:
        pos %= len(text) + 1
        text = text[:pos] + piece + text[pos + (1 if replace else 0) :]
    dt = np.dtype(descr)
    n = 1
    for d in shape:
        n *= d
    data = _npy(text, bytes(dt.itemsize * n), major)
    theirs = _numpy_header(data, major)
    if _ours(data):
        assert theirs is not None, text
        ours = _parse_header(text.encode("latin-1"), major, "a.npy")
        assert (ours["shape"], ours["fortran_order"]) == theirs[:2], text
        assert np.dtype(ours["descr"]) == theirs[2], text  # type: ignore[call-overload]
    if not edits:
        assert theirs == (shape, fortran, dt)
        assert _ours(data)


def test_random_py2_headers_agree_on_shape_with_numpy() -> None:
    """Generated headers of many shapes: both readers give the same shape."""
    rng = random.Random(2)
    for _ in range(300):
        shape = tuple(rng.randrange(0, 10 ** rng.randrange(1, 12)) for _ in range(rng.randrange(4)))
        text = _py2_header("<i2", rng.random() < 0.5, shape)
        data = _npy(text, b"")
        theirs = _numpy_header(data, 1)
        assert theirs is not None
        ours = _parse_header(text.encode("latin-1"), 1, "a.npy")
        assert ours["shape"] == theirs[0] and ours["fortran_order"] == theirs[1]
