"""Where does the next pickle of a sequence start, for each way a loader feeds the unpickler?

CPython's C unpickler reads a FRAME's whole body into its buffer at once. Fed from a file
object without ``peek`` (``io.BytesIO``: torch's legacy loader on a buffer, numpy on some
streams) the file is then positioned at the frame's end, so when a STOP sits inside a frame
with bytes after it, the next ``pickle.load`` starts at the frame's end; fed from a
``BufferedReader`` (which has ``peek``) it may start just after the STOP instead, depending on
buffer sizes. A pickle whose STOP leaves part of its frame unread therefore starts its
successor at offsets that depend on the stream type: for a sequence of pickles (the legacy
torch format, several pickles in one file) that is an ambiguity ckptguard refuses.

:func:`frame_tail` walks the opcodes of one already analysed pickle (only when it holds a
0x95 byte at all, so frameless pickles cost one ``find``) and reports such a STOP.
"""

from __future__ import annotations

import mmap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._source import SourceBuffer

    # what the format readers read from (re-exported by _common): a local file's bytes or
    # mapping, or a remote object read by ranges
    Buffer = bytes | mmap.mmap | SourceBuffer
else:
    Buffer = bytes | mmap.mmap

# opcode -> size of its fixed argument (no entry: no argument)
_FIXED = {
    **dict.fromkeys(b"KhqU\x80\x82\x8a\x8cC", 1),
    **dict.fromkeys(b"M\x83", 2),
    **dict.fromkeys(b"JjrTXB\x84\x8b", 4),
    **dict.fromkeys(b"G\x95\x8d\x8e\x96", 8),
}
# opcodes whose fixed argument is the length of the data that follows it
_COUNTED = {
    ord("U"): 1, 0x8C: 1, ord("C"): 1, 0x8A: 1,
    ord("T"): 4, ord("X"): 4, ord("B"): 4, 0x8B: 4,
    0x8D: 8, 0x8E: 8, 0x96: 8,
}  # fmt: skip
_LINES = {**dict.fromkeys(b"ILFSVPgp", 1), **dict.fromkeys(b"ci", 2)}
_FRAME, _STOP = 0x95, 0x2E


def frame_tail(data: Buffer, start: int, end: int) -> str | None:
    """Why the pickle at ``data[start:end]`` (``end``: just past its STOP) ends its sequence
    ambiguously, or None. Also refuses opcodes that run past the end of their frame (the C
    unpickler then drops the frame's last bytes and reads the argument from after it)."""
    if data.find(b"\x95", start, end) < 0:
        return None
    pos, frame_end = start, -1
    while pos < end:
        op = data[pos]
        at = pos
        pos += 1
        width = _FIXED.get(op)
        if width is not None:
            arg = int.from_bytes(data[pos : pos + width], "little", signed=op in b"T\x8b")
            pos += width
            if op in _COUNTED:
                pos += max(arg, 0)
            elif op == _FRAME:
                if frame_end > at:
                    return f"a FRAME at byte {at} starts inside the frame that ends at {frame_end}"
                frame_end = pos + arg
                continue
        else:
            for _ in range(_LINES.get(op, 0)):
                nl = data.find(b"\n", pos, end)
                pos = end + 1 if nl < 0 else nl + 1
        if frame_end > at and pos > frame_end:
            return f"the opcode at byte {at} runs past the end of its frame (byte {frame_end})"
        if op == _STOP:
            if frame_end > pos:
                return (
                    f"the STOP at byte {at} leaves {frame_end - pos} bytes of its frame unread: "
                    "the next pickle.load starts after the frame when the file is an io.BytesIO, "
                    "right after the STOP when it is a buffered file"
                )
            return None
    return f"no STOP where the pickle analysis ended (byte {end})"


_REACHING = frozenset(b"ci\x93\x82\x83\x84")  # GLOBAL, INST, STACK_GLOBAL, EXT1/2/4
_KNOWN = frozenset(
    b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}\x80\x81\x82\x83\x84\x85\x86\x87\x88"
    b"\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)


def importable(module: str) -> bool:
    """Whether ``module`` is a dotted name an import could find (the only ones a pickle's
    find_class can load: anything else fails with ModuleNotFoundError)."""
    return all(part.isidentifier() for part in module.split("."))


def reaches_code(data: Buffer, until: int) -> bool:
    """Whether an opcode that can reach code (a global or an extension-registry entry) starts
    at or before byte ``until`` when ``data`` is read as a pickle from its first byte."""
    pos, end = 0, min(until, len(data) - 1)
    while pos <= end:
        op = data[pos]
        if op in _REACHING:
            if op not in b"ci":
                return True
            # GLOBAL and INST read a module line and a name line before they import anything,
            # and only a dotted identifier names a module an import can find
            first = data.find(b"\n", pos + 1)
            if first < 0 or data.find(b"\n", first + 1) < 0:
                return False
            return importable(bytes(data[pos + 1 : first]).decode("utf-8", "replace"))
        if op not in _KNOWN or op == _STOP:
            return False
        pos += 1
        width = _FIXED.get(op)
        if width is not None:
            arg = int.from_bytes(data[pos : pos + width], "little", signed=op in b"T\x8b")
            pos += width + (max(arg, 0) if op in _COUNTED else 0)
        else:
            for _ in range(_LINES.get(op, 0)):
                nl = data.find(b"\n", pos)
                if nl < 0:
                    return False
                pos = nl + 1
    return False
