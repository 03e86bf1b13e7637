"""Hostile samples from red-teaming the merged issue-10 product (red1).

Each builder writes a file that ckptguard once rated ``safe`` while a stock loader runs a
payload creating ``marker``. They are built opcode by opcode (tests/pickleasm.py), documented
below; ``tests/_formats/test_hostile_red1.py`` proves each payload live under the stock
loaders (in a subprocess) and refused by scan, load and convert.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.pickleasm import (
    BINPERSID,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    NEWTRUE,
    NONE,
    REDUCE,
    SETITEM,
    TUPLE,
    TUPLE1,
    binint2,
    binunicode,
    glob,
    program,
    system,
)


def payload(marker: Path) -> bytes:
    """A protocol 0 pickle calling ``os.system('touch MARKER')``."""
    return system(f"touch {marker}")


def case_safetensors_pickle(path: Path, marker: Path, lead: bytes = b"") -> Path:
    """A valid safetensors file that is also a pickle running ``payload(marker)``.

    safetensors starts with its header length, 8 bytes little-endian. Low bytes ``C`` (0x43,
    SHORT_BINBYTES) and ``L`` make the unpickler skip ``L`` bytes: the rest of the length
    field, ``{`` and the JSON up to a ``V`` (UNICODE) at the start of a metadata string.
    UNICODE reads to the next newline: the rest of the JSON header (no newline in it) and on
    into the tensor data, a uint8 tensor whose bytes are ``\\n`` plus the payload. The header
    length is ``0x43 + 256 * L`` (about 7 KiB), padded with spaces; the JSON is valid, every
    tensor exactly covers the data, so a safetensors reader accepts the file, while
    ``pickle.load``, ``numpy.load(allow_pickle=True)`` and ``torch.load(weights_only=False)``
    (legacy path: not a zip, not a tar) run the payload.
    """
    data = b"\n" + lead + payload(marker)
    prefix = '{"__metadata__":{"a":"'
    skip = 8 + len(prefix) - 2  # from byte 2 to the V
    length = 0x43 | (skip << 8)
    entry = {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}
    header = prefix + 'V"},"t":' + json.dumps(entry, separators=(",", ":")) + "}"
    assert len(header) <= length and "\n" not in header
    header += " " * (length - len(header))
    path.write_bytes(length.to_bytes(8, "little") + header.encode() + data)
    return path


# One past ckptguard's memo bound (PickleLimits.max_memo): CPython's unpickler just grows its
# memo table (160 MB) and reads on.
OVER_MEMO_LIMIT = 20_000_001


def over_memo_limit() -> bytes:
    """LONG_BINPUT of the top of the stack at an index past ckptguard's memo bound, then POP."""
    return b"r" + struct.pack("<I", OVER_MEMO_LIMIT) + b"0"


def case_memo_limit_sniff(path: Path, marker: Path) -> Path:
    """A pickle a directory scan once skipped as "not a checkpoint".

    It starts with BINFLOAT (not one of the usual first opcodes), so the directory walk asks the
    analyser whether pickle.load fails early; the analyser stops at the LONG_BINPUT index past
    its own memo bound (byte 9) before any global, which was taken for a failure of
    pickle.load. CPython grows its memo and runs the payload. The name has no checkpoint suffix.
    """
    path = path.with_suffix(".weights")
    path.write_bytes(b"G" + struct.pack(">d", 1.0) + over_memo_limit() + payload(marker))
    return path


def case_safetensors_pickle_memo_limit(path: Path, marker: Path) -> Path:
    """:func:`case_safetensors_pickle` whose pickle passes the analyser's memo bound before the
    payload (a polyglot check that took any analyser failure as pickle.load's)."""
    return case_safetensors_pickle(path, marker, lead=over_memo_limit())


CASES = {
    "safetensors-pickle": case_safetensors_pickle,
    "safetensors-pickle-memo-limit": case_safetensors_pickle_memo_limit,
    "memo-limit-sniff": case_memo_limit_sniff,
}


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def case_legacy_magic_object(path: Path, numel: int = 1 << 28) -> Path:
    """Pickles in a row that torch.load reads as a pre-1.6 checkpoint, ckptguard as plain pickles.

    torch's legacy loader checks ``magic != MAGIC_NUMBER`` and ``version != 1001``: the first
    pickle here is ``decimal.Decimal('<magic>')`` (equal to the int, but not an int), so a
    reader that recognises the legacy format by the int alone checks five plain pickles in a
    row. torch.load instead calls its persistent_load on the fourth one: the persistent id
    ``('storage', torch.FloatStorage, '0', 'cpu', numel, None)`` allocates ``4 * numel`` bytes
    (1 GiB by default; any size) from a 250-byte file. No storage keys follow, so no raw data.
    """
    magic = program(glob("decimal", "Decimal"), binunicode(str(LEGACY_MAGIC)), TUPLE1, REDUCE)
    version = program(binint2(1001))
    info = program(EMPTY_DICT, binunicode("little_endian"), NEWTRUE, SETITEM)
    pid = MARK + binunicode("storage") + glob("torch", "FloatStorage") + binunicode("0")
    pid += binunicode("cpu") + b"\x8a\x08" + struct.pack("<q", numel) + NONE + TUPLE  # LONG1
    obj = program(EMPTY_DICT, binunicode("a"), pid, BINPERSID, SETITEM)
    keys = program(EMPTY_LIST)
    path.write_bytes(magic + version + info + obj + keys)
    return path
