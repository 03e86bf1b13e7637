"""ckptguard's .npy header reading against numpy's own parser (hypothesis-generated headers).

Guards: whenever numpy would read an array's data with pickle (its dtype ``hasobject``),
ckptguard never calls the file safe without scanning that pickle; whenever ckptguard accepts a
header as plain data, numpy parses it to the same shape, fortran_order, item size and a dtype
without objects.
"""

from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

from ckptguard._errors import CorruptCheckpointError
from ckptguard._formats._npy import DtypeError, classify_descr, read_npy
from ckptguard._pickle import DEFAULT_LIMITS

_ORDER = st.sampled_from(["", "<", ">", "|", "="])
_CODES = st.sampled_from(
    ["b1", "i1", "i2", "i4", "i8", "u1", "u8", "f2", "f4", "f8", "f16", "c8", "c16", "c32",
     "S3", "U2", "V4", "M8", "m8[ns]", "M8[D]", "M8[10s]", "O", "O4", "O8", "object", "object_",
     "i", "l", "d", "f", "?", "b", "B", "q", "e", "g", "G", "a4", "S0", "U0", "V0", "f3", "i3",
     "int64", "float32", "bool", "str", "bytes", "i4,O", "O,f4", "(2,)O", "(2,)f4", "2i4",
     "M8[xs]", "m8[as]", "P", "p", "O16", "O0", "Ob", "Oi4", "c", "x", "", " ", "<"]
)  # fmt: skip
_TEXT = st.text(alphabet="<>|=bBiuflfdcSUVOMmo[]0123456789(),ject_ ", max_size=8)
_STR = st.one_of(st.builds(lambda o, c: o + c, _ORDER, _CODES), _TEXT)
_SHAPE = st.one_of(
    st.integers(-1, 3), st.tuples(*[st.integers(-1, 3)] * 2), st.tuples(), st.just(True)
)


def _descr(depth: int = 2) -> st.SearchStrategy[object]:
    if depth == 0:
        return _STR
    inner = _descr(depth - 1)
    name = st.one_of(st.sampled_from(["a", "b", ""]), st.tuples(st.just("t"), st.just("n")))
    field = st.one_of(st.tuples(name, inner), st.tuples(name, inner, _SHAPE))
    return st.one_of(
        _STR,
        st.tuples(inner, _SHAPE),
        st.lists(field, max_size=3),
        st.tuples(inner, _SHAPE, _SHAPE),  # a 3-tuple numpy reads as a subarray too
        st.lists(st.sampled_from(["aO", "bO", "af"]), max_size=2),  # fields numpy unpacks
    )


def _numpy_dtype(descr: object) -> np.dtype | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return npformat.descr_to_dtype(descr)
        except Exception:  # numpy refuses it: nothing to compare
            return None


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_descr())
@example("|O8")
@example("<O8")
@example("O4")
@example("object")
@example([("a", "<f4"), ("b", "|O")])
@example(("|O", (2,)))
@example("i4,O")
@example(["aO"])
def test_descr_classification_agrees_with_numpy(descr: object) -> None:
    dt = _numpy_dtype(descr)
    try:
        size, has_object = classify_descr(descr)
    except (DtypeError, RecursionError):
        return  # refused: an error verdict, whatever numpy thinks
    assert dt is not None, f"ckptguard accepts {descr!r}, numpy does not parse it"
    assert has_object == dt.hasobject, descr
    if not has_object:
        assert size == dt.itemsize, descr


def _npy(header_text: str, body: bytes) -> bytes:
    raw = header_text.encode("latin-1")
    return npformat.MAGIC_PREFIX + b"\x01\x00" + len(raw).to_bytes(2, "little") + raw + body


_HEADER_VALUES = st.fixed_dictionaries(
    {
        "descr": _descr(1),
        "fortran_order": st.one_of(st.booleans(), st.just(0), st.just(None)),
        "shape": st.one_of(
            st.lists(st.integers(0, 3), max_size=3).map(tuple),
            st.just([2]),
            st.just((True, 1)),
            st.just((-1,)),
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_HEADER_VALUES, st.sampled_from([0, 1, 2]))
@example({"descr": "|O8", "fortran_order": False, "shape": ()}, 1)
@example({"descr": [("a", "<i4"), ("b", "O")], "fortran_order": True, "shape": (1,)}, 1)
def test_whole_header_read_agrees_with_numpy(header: dict[str, object], body_kind: int) -> None:
    """A file ckptguard reads as plain data is one numpy reads with the same header; a file
    numpy would unpickle is either scanned as a pickle or refused."""
    text = repr(header)
    dt = _numpy_dtype(header["descr"])
    body: bytes
    if body_kind == 0:
        body = pickle.dumps([1, 2], protocol=2)
    elif dt is not None and not dt.hasobject:
        n = 1
        for d in header["shape"] if isinstance(header["shape"], tuple) else ():
            n *= max(int(d), 0)
        body = b"\x00" * (dt.itemsize * n + (body_kind - 1))
    else:
        body = b"\x00" * 8
    data = _npy(text, body)
    try:
        extracted = read_npy(data, "a.npy", DEFAULT_LIMITS)
    except CorruptCheckpointError:
        return  # an error verdict
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp = io.BytesIO(data)
        npformat.read_magic(fp)
        try:
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        except Exception:
            pytest.fail(f"ckptguard reads {text!r}, numpy refuses it")
    assert shape == header["shape"] and fortran is header["fortran_order"], text
    if dtype.hasobject:
        assert extracted.pickles or extracted.findings, (
            f"numpy unpickles {text!r}; ckptguard scanned no pickle and found nothing wrong"
        )
    else:
        assert not extracted.pickles, text
        size_ok = len(body) == dtype.itemsize * int(np.prod(shape))
        assert bool(extracted.findings) is not size_ok, text
