"""Result types of the pickle analyser (no logic here)."""

from __future__ import annotations

from dataclasses import dataclass

from ckptguard._errors import CorruptCheckpointError
from ckptguard._model import Finding, Use


class _Opaque:
    """A value the analyser does not fold into a constant (an object built by a call, ...)."""

    _instance: _Opaque | None = None

    def __new__(cls) -> _Opaque:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OPAQUE"


OPAQUE = _Opaque()


@dataclass(frozen=True)
class GlobalConst:
    """A global as a folded constant (e.g. the storage class inside a torch persistent id)."""

    module: str
    name: str


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on the work one pickle may cause; exceeding one is a PickleError."""

    max_opcodes: int = 100_000_000
    max_memo: int = 20_000_000  # memo entries
    max_stack: int = 20_000_000  # items on the stack (all frames together)
    max_marks: int = 100_000  # nesting depth (MARKs open at once)
    max_const_len: int = 4096  # longest str/bytes kept as a folded constant
    max_container_items: int = 1_000_000  # items folded into one list/tuple/dict constant
    max_string: int = 1 << 40  # longest single string/bytes argument accepted at all


DEFAULT_LIMITS = PickleLimits()


@dataclass(frozen=True)
class GlobalUsage:
    """One global (module, name) as the real unpickler would resolve it."""

    module: str
    name: str
    count: int  # number of times it is referenced (GLOBAL/STACK_GLOBAL/INST/OBJ occurrences)
    uses: frozenset[Use]
    raw: tuple[str, str] | None = None  # (module, name) as written, when fix_imports renamed it
    first_offset: int = 0  # byte offset of its first occurrence (relative to the stream start)


@dataclass(frozen=True)
class PickleAnalysis:
    """What one pickle stream would do, computed without executing it."""

    protocol: int  # highest PROTO argument seen (0 when there is none)
    end: int  # absolute offset just past the STOP opcode
    globals: tuple[GlobalUsage, ...]  # in order of first occurrence
    findings: tuple[Finding, ...]
    persistent_ids: tuple[object, ...]  # folded persistent ids (OPAQUE parts where unknown)
    value: object  # folded top-level result (int, str, bytes, float, bool, None, tuple, list,
    #               dict, GlobalConst) or OPAQUE
    opcodes: int  # number of opcodes executed


class PickleError(CorruptCheckpointError):
    """The stream is malformed, truncated, or exceeds a bound: fail closed."""

    def __init__(
        self,
        problem: str,
        *,
        offset: int | None = None,
        partial: tuple[GlobalUsage, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(problem, hint=hint)
        self.offset = offset
        self.partial = partial  # globals seen before the failure (still reported)
