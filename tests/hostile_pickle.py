"""Hostile pickles against the pickle layer's exactness (tests only; nothing here loads them).

Each sample is built from first principles: what CPython's C unpickler does with FRAMEs read
from a file object without ``peek`` (io.BytesIO: torch's zip records, ``torch.load(BytesIO)``
and the legacy format) versus from ``bytes`` (``pickle.loads``), the exact INT syntax it
accepts, and payloads that run before the stream breaks. ``runs`` names the feeding modes under
which the payload really runs (checked in a subprocess by the liveness test):

* ``loads``: ``pickle.loads(data)``
* ``file``: ``pickle.load(open(path, "rb"))`` (a BufferedReader, with ``peek``); ``file:N``
  the same with an N-byte buffer (``open``'s default is the file system's block size)
* ``bytesio``: ``pickle.load(io.BytesIO(data))``
* ``bytesio-seq``: ``pickle.load`` twice on one ``io.BytesIO`` (pickles in a row, as torch's
  legacy loader reads them)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.pickleasm import (
    NONE,
    POP,
    STOP,
    binget,
    binint1,
    binunicode_head,
    call,
    frame,
    glob,
    program,
    proto,
    short_binunicode_head,
    unicode0,
    ustr,
)


@dataclass(frozen=True)
class Sample:
    name: str
    build: Callable[[str], bytes]
    runs: tuple[str, ...]  # feeding modes under which the payload runs


def _payload(marker: str) -> bytes:
    """os.system("touch MARKER") as opcodes (no PROTO, no STOP)."""
    return call(glob("os", "system"), ustr(f"touch {marker}"))


def _ascii_payload(marker: str, size: int = 0) -> bytes:
    """The payload in ASCII opcodes only (so a string may hold it), padded to ``size``."""
    ops = call(glob("os", "system"), unicode0(f"touch {marker}"))
    pad = max(size - len(ops), 0)
    assert pad != 1
    if pad % 2:
        ops += binint1(0) + POP  # 3 bytes
        pad -= 3
    return ops + (NONE + POP) * (pad // 2)


def frame_cuts_a_string(marker: str) -> bytes:
    """A FRAME ends five bytes into a string's data. Read from bytes, the string is followed by
    a second string that holds the payload; read from io.BytesIO, the unpickler drops the five
    bytes left in its frame buffer, reads the first string from after the frame (taking the
    second string's 5-byte header as its data), and lands on the payload itself."""
    size = 0x17F if len(_ascii_payload(marker)) > 0x7F else 0x7F  # its length bytes are ASCII
    payload = _ascii_payload(marker, size)
    in_frame = binunicode_head(8) + b"abcde"  # an 8-byte string starts here
    hider = binunicode_head(size)  # a string of the payload's length
    rest = b"fgh" + hider
    return proto(4) + frame(len(in_frame)) + in_frame + rest + payload + POP + POP + NONE + STOP


def frame_shorter_than_its_opcodes(marker: str) -> bytes:
    """A FRAME that claims 3 bytes in front of a payload in plain sight: pickle.loads runs it;
    io.BytesIO drops the frame buffer's rest and fails."""
    body = _payload(marker) + POP + NONE
    return proto(4) + frame(3) + body + STOP


def data_after_stop_in_a_frame(marker: str) -> bytes:
    """Two pickles in a row. The first's FRAME holds more than its STOP: read in a row from
    bytes, the second pickle is a string that swallows the payload; io.BytesIO skips the rest
    of the frame after STOP, so its second load starts on the payload."""
    payload = _ascii_payload(marker) + STOP
    first = proto(4) + frame(4) + NONE + STOP + short_binunicode_head(len(payload))
    return first + payload + STOP


def nested_frame_hides_a_payload(marker: str) -> bytes:
    """A FRAME inside a frame, longer than what is left of the outer one: from bytes it is a
    bounds check and the payload is a string's data; io.BytesIO drops the outer frame's rest
    and reads the inner frame from after the outer one: the payload."""
    payload = _ascii_payload(marker)
    inner = frame(len(payload))
    outer = inner + short_binunicode_head(len(payload))
    return proto(4) + frame(len(outer)) + outer + payload + STOP


def frame_read_in_place_or_not(marker: str, buffer_size: int = 8192) -> bytes:
    """Two frames that cut strings. From bytes both are read in place (harmless strings); from
    io.BytesIO both in one piece (the load ends in the first one's hidden part). An opened file
    with ``buffer_size`` bytes of buffer shows the C unpickler the first frame whole (read in
    place) but not the second, which straddles the buffer's edge (read in one piece): only
    that mixture reaches the payload."""
    cut = binunicode_head(8) + b"abcde"  # an 8-byte string starts in the frame
    prefix_len = 2 + 9 + len(cut) + 3 + 5  # PROTO, frame A, its string, the hider's header
    second = 9 + 3  # frame B's header and 3 bytes of its data before the buffer's edge
    room = buffer_size - prefix_len - second
    hidden_len = max(n for n in range(room - 3) if n & 0x80808080 == 0)  # ASCII length bytes
    pad = room - hidden_len  # benign opcodes in front make up the difference
    nop = NONE + POP
    padding = nop * (pad // 2) if pad % 2 == 0 else binint1(0) + POP + nop * ((pad - 3) // 2)
    hidden = NONE + STOP + nop * ((hidden_len - 2) // 2) + NONE * (hidden_len % 2)
    part_a = frame(len(cut)) + cut + b"fgh" + binunicode_head(hidden_len) + hidden
    size = 0x17F if len(_ascii_payload(marker)) > 0x7F else 0x7F
    payload = _ascii_payload(marker, size)
    part_b = frame(len(cut)) + cut + b"fgh" + binunicode_head(size) + payload
    data = proto(4) + padding + part_a + part_b + POP * 4 + NONE + STOP
    assert data.index(part_b) + second == buffer_size
    return data


def payload_then_bad_memo_key(marker: str) -> bytes:
    """os.system runs, then the stream fails on a memo key that was never stored."""
    return program(_payload(marker) + POP + binget(9))


def payload_then_truncation(marker: str) -> bytes:
    """os.system runs, then the stream ends without STOP."""
    return program(_payload(marker) + POP + NONE)[:-1]


def int_with_an_embedded_nul(marker: str) -> bytes:
    """``I\\0\\n`` is 0 to CPython (strtol stops at the C string's end): a reader that refuses
    it stops before the payload that follows."""
    return program(b"I\x00\n" + POP + _payload(marker), protocol=None)


def octal_int_then_payload(marker: str) -> bytes:
    """``I010`` is 8 to CPython's C unpickler (strtol base 0); the payload follows."""
    return program(b"I010\n" + POP + _payload(marker), protocol=None)


SAMPLES: list[Sample] = [
    Sample("frame cuts a string (io.BytesIO reads the payload)", frame_cuts_a_string, ("bytesio",)),
    Sample("frame shorter than its opcodes", frame_shorter_than_its_opcodes, ("loads", "file")),
    Sample("data after STOP in a frame", data_after_stop_in_a_frame, ("bytesio-seq",)),
    Sample("nested frame hides a payload", nested_frame_hides_a_payload, ("bytesio",)),
    Sample(
        "frames read in place or not, by where the file buffer ends",
        frame_read_in_place_or_not,
        ("file:8192",),
    ),
    Sample(
        "payload then a bad memo key",
        payload_then_bad_memo_key,
        ("loads", "file", "bytesio"),
    ),
    Sample("payload then truncation", payload_then_truncation, ("loads", "file", "bytesio")),
    Sample("INT with an embedded NUL", int_with_an_embedded_nul, ("loads", "file", "bytesio")),
    Sample("octal INT then payload", octal_int_then_payload, ("loads", "file", "bytesio")),
]
