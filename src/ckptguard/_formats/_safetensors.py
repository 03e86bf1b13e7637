"""safetensors: an 8-byte header length, a JSON header, then tensor bytes. No pickles."""

from __future__ import annotations

from ._common import Buffer, corrupt
from ._extracted import Extracted

# typing is only needed by type checkers; importing it costs start-up time (mypy honours a
# module-level TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_SIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F4": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8, "C128": 16,
}  # fmt: skip


def looks_like_safetensors(buf: Buffer) -> bool:
    if len(buf) < 10:
        return False
    n = int.from_bytes(buf[:8], "little")
    return 2 <= n <= len(buf) - 8 and buf[8:9] == b"{"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise corrupt(f"safetensors header repeats the key {k!r}", fmt="safetensors")
        out[k] = v
    return out


class Entry:
    """One tensor of a safetensors header (validated)."""

    __slots__ = ("begin", "dtype", "end", "name", "shape")

    def __init__(self, name: str, dtype: str, shape: list[int], begin: int, end: int) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.begin = begin
        self.end = end


def parse_header(buf: Buffer) -> tuple[list[Entry], dict[str, str] | None]:
    """The validated header: its entries in file order (by data offset, as
    ``safetensors.torch.load_file`` returns them; header order among equal offsets) and its
    ``__metadata__``. Raises CorruptCheckpointError for anything safetensors would refuse or
    read differently (holes, overlaps, sizes that do not match, trailing bytes)."""
    size = len(buf)
    n = int.from_bytes(buf[:8], "little")
    if n > _MAX_HEADER or n > size - 8:
        raise corrupt("safetensors header length is larger than the file", fmt="safetensors")
    try:
        text = bytes(buf[8 : 8 + n]).decode("utf-8").rstrip(" ")
        import json  # noqa: PLC0415 - start-up time: most scans meet no safetensors file

        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise corrupt("safetensors header is not valid UTF-8 JSON", fmt="safetensors") from None
    if not isinstance(header, dict):
        raise corrupt("safetensors header is not a JSON object", fmt="safetensors")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise corrupt("safetensors __metadata__ must map strings to strings", fmt="safetensors")
    entries: list[Entry] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise corrupt(f"safetensors entry {name!r} is malformed", fmt="safetensors")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZE:
            raise corrupt(
                f"safetensors entry {name!r} has unknown dtype {dtype!r}", fmt="safetensors"
            )
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise corrupt(f"safetensors entry {name!r} has an invalid shape", fmt="safetensors")
        if not (
            isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)
            and 0 <= offs[0] <= offs[1]
        ):  # fmt: skip
            raise corrupt(f"safetensors entry {name!r} has invalid data_offsets", fmt="safetensors")
        count = 1
        for d in shape:
            count *= d
        if offs[1] - offs[0] != count * _DTYPE_SIZE[dtype]:
            raise corrupt(
                f"safetensors entry {name!r}: {offs[1] - offs[0]} bytes for {count} {dtype}",
                fmt="safetensors",
            )
        entries.append(Entry(name, dtype, shape, offs[0], offs[1]))
    order = sorted(range(len(entries)), key=lambda i: (entries[i].begin, entries[i].end, i))
    entries = [entries[i] for i in order]
    pos = 0
    for e in entries:
        if e.begin != pos:
            raise corrupt(
                f"safetensors entry {e.name!r} leaves a hole or overlaps another",
                fmt="safetensors",
            )
        pos = e.end
    if 8 + n + pos != size:
        raise corrupt(
            "safetensors data does not end exactly at the end of the file", fmt="safetensors"
        )
    return entries, meta


def read_safetensors(buf: Buffer) -> Extracted:
    entries, _meta = parse_header(buf)
    return Extracted("safetensors", details={"tensors": str(len(entries))})
