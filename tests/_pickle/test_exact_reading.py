"""ckptguard's pickle readers read exactly what CPython's C unpickler reads: text arguments
(INT, LONG, FLOAT, PUT/GET keys, STRING, GLOBAL/INST names), FRAMEs, and the bytes a file
object without ``peek`` hands it (each tested against the real C unpickler)."""

from __future__ import annotations

import io
import pickle
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ckptguard._errors import PickleError
from ckptguard._pickle import analyze_pickle
from ckptguard._pickle._reader import unframed_stream
from ckptguard._pickle._tree import build_tree
from tests.pickleasm import frame, proto

_TEXT = st.binary(max_size=7).filter(lambda b: b"\n" not in b) | st.text(
    "0123456789xXoObBL+-_ .eEinfaINFAty\t\r\x0b\x00", max_size=7
).map(lambda t: t.encode())


def _real(data: bytes) -> object:
    try:
        return ("ok", type(pickle.loads(data)).__name__, repr(pickle.loads(data)))
    except Exception:
        return "error"


def _vm(data: bytes) -> object:
    try:
        v = analyze_pickle(data).value
    except PickleError:
        return "error"
    return ("ok", type(v).__name__, repr(v))


def _tree(data: bytes) -> object:
    try:
        v = build_tree(data).root
    except PickleError:
        return "error"
    return ("ok", type(v).__name__, repr(v))


@settings(max_examples=300, deadline=None)
@given(arg=_TEXT, op=st.sampled_from([b"I", b"L", b"F"]))
@example(arg=b"010", op=b"I")  # octal to strtol: 8
@example(arg=b"0x10", op=b"I")
@example(arg=b"\x00", op=b"I")  # an empty C string: 0
@example(arg=b"0\x00", op=b"I")  # two characters worth 0: False
@example(arg=b"-0", op=b"I")
@example(arg=b"0777777777777777777777777", op=b"I")  # overflows strtol, refused by int(s, 0)
@example(arg=b"1_0", op=b"I")
@example(arg=b"10 ", op=b"I")
@example(arg=b"00L", op=b"L")
@example(arg=b"010", op=b"L")
@example(arg=b" 1.5", op=b"F")
@example(arg=b"1_0.5", op=b"F")
@example(arg=b"1e999", op=b"F")
@example(arg=b"infinity", op=b"F")
def test_numbers_in_text_read_as_cpython_reads_them(arg: bytes, op: bytes) -> None:
    data = op + arg + b"\n."
    real = _real(data)  # reprs: a NaN compares equal to itself
    assert _vm(data) == real
    assert _tree(data) == real


@settings(max_examples=200, deadline=None)
@given(key=_TEXT)
@example(key=b"01")
@example(key=b" 7")
@example(key=b"0x7")
@example(key=b"7\x00junk")
@example(key=b"-0")
@example(key=b"")
def test_memo_keys_in_text_read_as_cpython_reads_them(key: bytes) -> None:
    """PUT then GET with the same text key, then GET of key 7: agree with the C unpickler."""
    for data in (
        b"K\x07p" + key + b"\n0g" + key + b"\n.",
        b"K\x07p" + key + b"\n0g7\n.",
    ):
        assert _vm(data) == _real(data), data
        assert _tree(data) == _real(data), data


@pytest.mark.parametrize(
    "data",
    [
        b"S'ab'\n.",
        b"S'ab' \n.",  # a space after the quote: CPython refuses it
        b"S'ab'\r\n.",
        b'S"a\\x41"\n.',
        b"S'a'\x00\n.",
        b"S'\n.",
        b"cbuiltins\nint\n.",
        b"c\nint\n.",  # empty module name
        b"cbuiltins\n\n.",  # empty name
        b"(ibuiltins\nint\n.",
        b"(ibuiltins\xc3\xa9\nint\n.",  # INST names are ASCII
        b"\x80\x02T\x00\x00\x00\x80ab.",  # BINSTRING's length is unsigned: truncated
    ],
)
def test_strings_and_names_read_as_cpython_reads_them(data: bytes) -> None:
    real = _real(data)
    ours = _vm(data)
    assert (ours == "error") == (real == "error"), (ours, real)


def test_non_ascii_protocol_2_strings_never_name_a_global() -> None:
    """BINSTRING bytes decode with the loader's encoding (ASCII for pickle.load, UTF-8 for
    torch.load): as STACK_GLOBAL operands they have no single value, so they are dangerous."""
    data = b"\x80\x04U\x02osU\x06syst\xc3\xa9\x93."
    a = analyze_pickle(data)
    assert not a.globals
    assert any(f.rule == "pickle-dynamic-global" for f in a.findings)


def _frame_findings(data: bytes) -> list[str]:
    return [f.message for f in analyze_pickle(data).findings if f.rule == "pickle-frame-ambiguity"]


@pytest.mark.parametrize("protocol", [4, 5])
def test_frames_written_by_pickle_have_no_ambiguity(protocol: int) -> None:
    data = pickle.dumps({"a": ["x" * 100_000, list(range(20_000))]}, protocol=protocol)
    assert data.count(b"\x95") >= 1
    assert _frame_findings(data) == []
    build_tree(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (proto(4) + frame(3) + b"X\x02\x00\x00\x00ab.", "runs past the end of its FRAME"),
        (proto(4) + frame(4) + b"Nce" + b"xx\nyy\n0.", "runs past the end of its FRAME"),
        (proto(4) + frame(4) + b"N.K\x01", "followed by 2 more bytes of its FRAME"),
        (proto(4) + frame(11) + frame(2) + b"N.", "starts inside the frame"),
    ],
)
def test_a_frame_that_does_not_hold_whole_opcodes_is_an_error(data: bytes, words: str) -> None:
    assert any(words in m for m in _frame_findings(data))
    with pytest.raises(PickleError, match=r"(?i)frame"):
        build_tree(data)


def test_a_frame_past_the_end_of_the_data_is_truncation() -> None:
    with pytest.raises(PickleError, match="frame exceeds the data"):
        analyze_pickle(proto(4) + frame(100) + b"N.")


def _mutated_frames(data: bytes, flips: list[tuple[int, int]], deltas: list[int]) -> bytes:
    out = bytearray(data)
    frames = [i for i in range(len(out)) if out[i] == 0x95]
    for i, delta in zip(frames, deltas, strict=False):
        (n,) = struct.unpack_from("<Q", out, i + 1)
        struct.pack_into("<Q", out, i + 1, max(0, n + delta))
    for at, byte in flips:
        out[at % len(out)] = byte
    return bytes(out)


_FRAMED = pickle.dumps(
    [{"a": [1, 2.5, "x" * 300, b"y" * 20, (1, 2)], "b": None}, list(range(3000))], protocol=4
)


@settings(max_examples=300, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, len(_FRAMED)), st.integers(0, 255)), max_size=3),
    deltas=st.lists(st.integers(-9, 9), max_size=3),
)
def test_unframed_stream_is_what_io_bytesio_hands_the_unpickler(
    flips: list[tuple[int, int]], deltas: list[int]
) -> None:
    """pickle.loads of the unframed stream behaves as pickle.load(io.BytesIO(data)): same value,
    and the file is left where unframed_stream says."""
    data = _mutated_frames(_FRAMED, flips, deltas)
    f = io.BytesIO(data)
    try:
        real: object = (repr(pickle.load(f)), f.tell())
    except Exception:
        real = "error"
    reading = unframed_stream(data, 0)
    stream, end = reading.stream, reading.end
    try:
        ours: object = (repr(pickle.loads(stream)), end)
    except Exception:
        ours = "error"
    assert ours == real


def test_operations_the_unpickler_refuses_are_errors_but_the_walk_goes_on() -> None:
    """SETITEM on a list works on a real list with an int key; ckptguard does not model it: the
    file is an error, and the global after it is still reported."""
    data = b"\x80\x02](K\x01e" + b"K\x00K\x05s" + b"cos\nsystem\n0."
    a = analyze_pickle(data)
    assert any(f.rule == "pickle-invalid-operation" for f in a.findings)
    assert [(g.module, g.name) for g in a.globals] == [("os", "system")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02U\x05caf\xc3\xa9.",  # SHORT_BINSTRING
        b"\x80\x02T\x05\x00\x00\x00caf\xc3\xa9.",  # BINSTRING
        b"S'caf\\xc3\\xa9'\n.",  # STRING with escapes
        b"\x80\x02U\x04caf\xe9.",  # latin-1 bytes: not UTF-8
    ],
)
def test_protocol_2_strings_convert_to_what_torch_load_reads(data: bytes) -> None:
    """torch.load reads protocol 0-2 ``str`` bytes as UTF-8 (its default encoding): convert
    turns the tree's Python 2 string into the same text, or refuses where torch.load fails.
    (The tree keeps the bytes: an array's data is read from them, as numpy does.)"""
    from ckptguard._convert import Converter
    from ckptguard._errors import ConvertError

    try:
        real: object = pickle.loads(data, encoding="utf-8")
    except UnicodeDecodeError:
        real = "error"
    try:
        ours: object = Converter({}).run(build_tree(data).root).root
    except ConvertError:
        ours = "error"
    assert type(ours) is type(real) and ours == real


def test_dangerous_findings_of_another_reading_are_reported() -> None:
    """A FRAME cuts a string: io.BytesIO reads, instead of the string's data, a BUILD that
    monkey-patches collections.OrderedDict (a safe global, a dangerous operation)."""
    patch = b"ccollections\nOrderedDict\n(Vx\nVy\ndb0"  # ASCII: a string can hold it
    size = 0x7F if (0x7F - len(patch)) % 2 else 0x7E  # hidden ends with N: 2 items either way
    hidden = patch + b"N0" * ((size - len(patch)) // 2) + b"N" * ((size - len(patch)) % 2)
    cut = b"X" + (8).to_bytes(4, "little") + b"abcde"
    data = (
        proto(4) + frame(len(cut)) + cut + b"fgh" + b"X" + size.to_bytes(4, "little")
        + hidden + b"00N."
    )  # fmt: skip
    assert pickle.loads(data) is None
    a = analyze_pickle(data)
    rules = {f.rule: f.severity for f in a.findings}
    assert rules.get("pickle-global-mutation") == "dangerous"
    assert "pickle-frame-ambiguity" in rules
