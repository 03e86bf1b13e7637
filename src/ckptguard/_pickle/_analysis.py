"""Result types of the pickle analyser (no logic here)."""

from __future__ import annotations

from ckptguard._record import Record, set_field
from ckptguard._results import FindingRecord
from ckptguard._verdict import Use


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


class GlobalConst(Record):
    """A global as a folded constant (e.g. the storage class inside a torch persistent id)."""

    __slots__ = ("module", "name")
    module: str
    name: str

    def __init__(self, module: str, name: str) -> None:
        set_field(self, "module", module)
        set_field(self, "name", name)


class PersistentRef(Record):
    """A folded persistent load: the object for ``persistent_ids[index]`` (a torch storage)."""

    __slots__ = ("index",)
    index: int

    def __init__(self, index: int) -> None:
        set_field(self, "index", index)


class PickleLimits(Record):
    """Bounds on the work one pickle may cause; exceeding one is a PickleError."""

    __slots__ = (
        "max_const_len",
        "max_container_items",
        "max_marks",
        "max_memo",
        "max_opcodes",
        "max_stack",
        "max_string",
    )
    max_opcodes: int
    max_memo: int
    max_stack: int
    max_marks: int
    max_const_len: int
    max_container_items: int
    max_string: int

    def __init__(
        self,
        *,
        max_opcodes: int = 100_000_000,  # (limits over 1023 are checked every 1024 opcodes)
        max_memo: int = 20_000_000,  # memo entries
        max_stack: int = 20_000_000,  # items on the stack (checked every 1024 opcodes)
        max_marks: int = 100_000,  # nesting depth (MARKs open at once)
        max_const_len: int = 4096,  # longest str/bytes kept as a folded constant
        max_container_items: int = 1_000_000,  # items folded into one list/tuple/dict constant
        max_string: int = 1 << 40,  # longest single string/bytes argument accepted at all
    ) -> None:
        set_field(self, "max_opcodes", max_opcodes)
        set_field(self, "max_memo", max_memo)
        set_field(self, "max_stack", max_stack)
        set_field(self, "max_marks", max_marks)
        set_field(self, "max_const_len", max_const_len)
        set_field(self, "max_container_items", max_container_items)
        set_field(self, "max_string", max_string)


DEFAULT_LIMITS = PickleLimits()


class GlobalUsage(Record):
    """One global (module, name) as the real unpickler would resolve it."""

    __slots__ = ("count", "first_offset", "module", "name", "raw", "uses")
    module: str
    name: str
    count: int  # number of times it is referenced (GLOBAL/STACK_GLOBAL/INST/OBJ occurrences)
    uses: frozenset[Use]
    raw: tuple[str, str] | None  # (module, name) as written, when fix_imports renamed it
    first_offset: int  # byte offset of its first occurrence (relative to the stream start)

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        module: str,
        name: str,
        count: int,
        uses: frozenset[Use],
        raw: tuple[str, str] | None = None,
        first_offset: int = 0,
    ) -> None:
        set_field(self, "module", module)
        set_field(self, "name", name)
        set_field(self, "count", count)
        set_field(self, "uses", uses)
        set_field(self, "raw", raw)
        set_field(self, "first_offset", first_offset)


class PickleAnalysis(Record):
    """What one pickle stream would do, computed without executing it."""

    __slots__ = (
        "calls",
        "end",
        "findings",
        "globals",
        "opcodes",
        "other_ends",
        "persistent_ids",
        "protocol",
        "unframed_end",
        "value",
    )
    protocol: int  # highest PROTO argument seen (0 when there is none)
    end: int  # absolute offset just past the STOP opcode
    globals: tuple[GlobalUsage, ...]  # in order of first occurrence
    findings: tuple[FindingRecord, ...]
    persistent_ids: tuple[object, ...]  # folded persistent ids (OPAQUE parts where unknown)
    value: object  # folded top-level result (int, str, bytes, float, bool, None, tuple, list,
    #               dict, GlobalConst) or OPAQUE
    opcodes: int  # number of opcodes executed
    calls: tuple[tuple[tuple[str, str], object], ...]  # (global, folded args) of RECORDED_CALLS
    # where a file object without peek (io.BytesIO) is left after this pickle: ``end``, unless a
    # FRAME holds more than the opcodes up to STOP (then the next pickle starts elsewhere)
    unframed_end: int
    # every other place a file object may be left after this pickle (io.BytesIO's, and an
    # opened file's depending on its buffer): empty unless a FRAME is ambiguous
    other_ends: tuple[int, ...]

    def __init__(
        self,
        *,
        protocol: int,
        end: int,
        globals: tuple[GlobalUsage, ...],
        findings: tuple[FindingRecord, ...],
        persistent_ids: tuple[object, ...],
        value: object,
        opcodes: int,
        calls: tuple[tuple[tuple[str, str], object], ...] = (),
        unframed_end: int | None = None,
        other_ends: tuple[int, ...] = (),
    ) -> None:
        set_field(self, "calls", calls)
        set_field(self, "other_ends", other_ends)
        set_field(self, "unframed_end", end if unframed_end is None else unframed_end)
        set_field(self, "protocol", protocol)
        set_field(self, "end", end)
        set_field(self, "globals", globals)
        set_field(self, "findings", findings)
        set_field(self, "persistent_ids", persistent_ids)
        set_field(self, "value", value)
        set_field(self, "opcodes", opcodes)

    def with_globals(
        self,
        globals: tuple[GlobalUsage, ...],
        unframed_end: int | None = None,
        findings: tuple[FindingRecord, ...] | None = None,
        other_ends: tuple[int, ...] = (),
    ) -> PickleAnalysis:
        """This analysis with other globals (those of another reading of the same bytes)."""
        return PickleAnalysis(
            protocol=self.protocol,
            end=self.end,
            globals=globals,
            findings=self.findings if findings is None else findings,
            persistent_ids=self.persistent_ids,
            value=self.value,
            opcodes=self.opcodes,
            calls=self.calls,
            unframed_end=self.unframed_end if unframed_end is None else unframed_end,
            other_ends=other_ends or self.other_ends,
        )


class PickleSource:
    """Bytes that are not all in memory yet (a remote object read by ranges,
    :class:`ckptguard._formats._source.SourceBuffer`): ``analyze_pickle`` hands the walk to
    :meth:`analyze_pickle`, which fetches what the walk reads."""

    __slots__ = ()

    def analyze_pickle(
        self, *, start: int, where: str, limits: PickleLimits, fold_value: bool
    ) -> PickleAnalysis:
        raise NotImplementedError
