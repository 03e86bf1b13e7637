"""Two byte-range ambiguities the container readers refuse: files Python's tarfile opens (torch's
legacy path reads those as tar archives), and pickle sequences whose next pickle starts at
stream-dependent offsets (a STOP inside a FRAME) - each checked against the real readers."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ckptguard
from ckptguard import FileVerdict
from ckptguard._formats._framing import frame_tail
from ckptguard._formats._tar import BLOCK, tar_would_open
from tests.pickleasm import NONE, STOP, binint1, framed, proto


def _tarfile_opens(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:"):
            return True
    except tarfile.TarError:
        return False


def _with_checksum(block: bytearray, signed: bool, style: int) -> bytes:
    block[148:156] = b" " * 8
    total = sum(block) if not signed else sum(b - 256 if b >= 128 else b for b in block)
    if style == 0:
        block[148:156] = b"%06o\0 " % (total & 0o777777)
    elif style == 1:
        block[148:156] = b"  %o\0" % total if total >= 0 else b"-%o\0" % -total
    else:  # base-256, the way tarfile writes numbers that do not fit
        block[148:156] = (b"\xff" if total < 0 else b"\x80") + (total % 256**7).to_bytes(7, "big")
    return bytes(block)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.binary(min_size=BLOCK, max_size=BLOCK + 64),
    st.booleans(),
    st.integers(0, 2),
    st.booleans(),
)
@example(b"\0" * BLOCK, False, 0, False)
@example(proto(2) + b"\xff" * (BLOCK - 2), True, 0, True)
def test_tar_test_flags_everything_tarfile_opens(
    raw: bytes, signed: bool, style: int, fix: bool
) -> None:
    """tar_would_open is True whenever tarfile.open(mode="r:") accepts the bytes (it may flag
    more: blocks whose later fields tarfile then rejects)."""
    data = bytearray(raw)
    if fix:
        data[:BLOCK] = _with_checksum(bytearray(data[:BLOCK]), signed, style)
    if _tarfile_opens(bytes(data)):
        assert tar_would_open(bytes(data))


def test_tar_test_is_not_vacuous() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
    assert tar_would_open(out.getvalue()) and _tarfile_opens(out.getvalue())
    assert not tar_would_open(pickle.dumps({"a": 1}) + b"\0" * BLOCK)


def _framed(body: bytes, tail: bytes = b"") -> bytes:
    return proto(4) + framed(body, tail)


def _next_offsets(data: bytes) -> tuple[int, int]:
    """Where the C unpickler leaves the stream after one pickle.load: from an io.BytesIO
    (no peek) and from a BufferedReader (peek)."""
    f = io.BytesIO(data)
    pickle.load(f)
    g = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    pickle.load(g)
    return f.tell(), g.tell()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.recursive(
        st.one_of(st.integers(), st.text(max_size=20), st.binary(max_size=20), st.none()),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=20,
    ),
    st.binary(max_size=12),
    st.integers(4, 5),
)
def test_frame_tail_agrees_with_the_c_unpickler(obj: object, tail: bytes, proto: int) -> None:
    """frame_tail reports exactly the pickles after which the C unpickler, fed from an io.BytesIO,
    leaves the stream elsewhere than just past the STOP."""
    plain = pickle.dumps(obj, protocol=proto)
    body = plain[11:] if plain[2:3] == b"\x95" else plain[2:]  # drop PROTO and FRAME
    data = _framed(body, tail) + NONE + STOP
    end = data.index(b".", 11 + len(body) - 1) + 1
    bytesio_at, _ = _next_offsets(data)
    problem = frame_tail(data, 0, end)
    assert (problem is not None) == (bytesio_at != end), (problem, bytesio_at, end)


def test_legacy_frame_tail_is_an_error_in_a_sequence(tmp_path: Path) -> None:
    data = _framed(binint1(1) + STOP, binint1(2) + STOP) + pickle.dumps(3, protocol=2)
    assert _next_offsets(data)[0] != data.index(b".") + 1  # the ambiguity is real
    path = tmp_path / "seq.pkl"
    path.write_bytes(data)
    rep = ckptguard.scan(path).files[0]
    assert rep.verdict is FileVerdict.ERROR
    assert "format-frame-tail" in {f.rule for f in rep.findings}
    whole = _framed(binint1(1) + STOP) + pickle.dumps(3, protocol=2)  # the frame ends at the STOP
    path.write_bytes(whole)
    assert ckptguard.scan(path).files[0].verdict is FileVerdict.SAFE
