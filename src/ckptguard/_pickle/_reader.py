"""What both pickle walkers share: the scanner's symbolic unpickler (``_vm``) and convert's
tree builder (``_tree``).

Each keeps its own opcode loop, because they give the opcodes different meanings (usage
analysis versus an object graph); this module is the reading underneath: the walk's state,
bounds-checked text arguments, the stack and its MARKs, CPython's protocol < 3 ``fix_imports``
renames, and turning any failure into a :class:`PickleError` that names the stream and the
byte offset (fail closed).
"""

from __future__ import annotations

import struct

from ckptguard._pickle._types import PickleError, PickleLimits

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn

HIGHEST_PROTOCOL = 5
U16 = struct.Struct("<H").unpack_from
U32 = struct.Struct("<I").unpack_from
I32 = struct.Struct("<i").unpack_from
U64 = struct.Struct("<Q").unpack_from
F64 = struct.Struct(">d").unpack_from

# What a walk over bytes nobody vetted may raise besides Fail: any of them means the stream
# is malformed in a way the walk did not anticipate, which is an error, never a crash.
MALFORMED = (
    ValueError,
    OverflowError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    MemoryError,
    RecursionError,
)


MISSING = object()  # "no such memo entry", for memo.get() in the inlined opcode loops


class Fail(Exception):
    """Internal: the stream is malformed at the current opcode."""


WALK_ERRORS = (Fail, *MALFORMED)  # what Reader.malformed turns into a PickleError


def map_name(module: str, name: str) -> tuple[str, str]:
    """CPython's protocol < 3 fix_imports renames (Python 2 names to Python 3 names)."""
    import _compat_pickle  # noqa: PLC0415 - only protocol 0-2 pickles need it (start-up time)

    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class Reader:
    """One walk over one pickle stream starting at ``start`` in ``data``."""

    def __init__(self, data: Any, start: int, where: str, limits: PickleLimits) -> None:
        self.data = data
        self.pos = start
        self.size = len(data)
        self.where = where
        self.limits = limits
        self.proto = 0
        self.max_proto = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.op_pos = start  # offset of the opcode being walked (for messages)

    def fail(self, problem: str) -> NoReturn:
        raise Fail(problem)

    def error(self, problem: str) -> PickleError:
        return PickleError(
            f"{self.where}: {problem} (opcode at byte {self.op_pos})",
            offset=self.op_pos,
            hint="the file is damaged or was not written by a pickler; re-download or re-export it",
        )

    def malformed(self, exc: Exception) -> PickleError:
        """The error for a failure of the walk (``Fail``, or one of ``MALFORMED``)."""
        if isinstance(exc, Fail):
            return self.error(str(exc))
        return self.error(f"malformed pickle ({type(exc).__name__}: {exc})")

    def line(self) -> bytes:
        pos = self.pos
        end = self.data.find(b"\n", pos)
        if end < 0:
            self.fail("truncated: a text argument has no terminating newline")
        self.pos = end + 1
        return bytes(self.data[pos:end])

    def text_name(self) -> str:
        """A GLOBAL/INST operand: a newline-terminated UTF-8 name."""
        try:
            return self.line().decode("utf-8")
        except UnicodeDecodeError:
            self.fail("a GLOBAL/INST name is not valid UTF-8")

    def pop(self) -> Any:
        stack = self.stack
        if not stack:
            self.fail("stack underflow")
        return stack.pop()

    def top(self) -> Any:
        if not self.stack:
            self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            self.fail("an opcode needs a MARK but none is open")
        items = self.stack
        self.stack = self.metastack.pop()
        return items
