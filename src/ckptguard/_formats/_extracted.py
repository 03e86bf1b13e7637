"""Result types of the format readers (no logic here)."""

from __future__ import annotations

from collections.abc import Mapping

from ckptguard._pickle import PickleAnalysis
from ckptguard._record import Record, set_field
from ckptguard._results import FindingRecord


class Member(Record):
    """One archive member, validated against its local header."""

    __slots__ = (
        "compressed_size",
        "crc",
        "data_offset",
        "end_offset",
        "flags",
        "header_offset",
        "method",
        "name",
        "size",
    )
    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    end_offset: int  # past the data and the data descriptor, if any

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        name: str,
        method: int,
        flags: int,
        crc: int,
        compressed_size: int,
        size: int,
        header_offset: int,
        data_offset: int,
        end_offset: int,
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "method", method)
        set_field(self, "flags", flags)
        set_field(self, "crc", crc)
        set_field(self, "compressed_size", compressed_size)
        set_field(self, "size", size)
        set_field(self, "header_offset", header_offset)
        set_field(self, "data_offset", data_offset)
        set_field(self, "end_offset", end_offset)


class PickleStream(Record):
    """One pickle found inside a file, already analysed."""

    __slots__ = ("analysis", "digest", "name", "start")
    name: str  # where it is: "archive/data.pkl", "pickle 3 of 5", "arr_0.npy", ...
    analysis: PickleAnalysis
    digest: bytes  # BLAKE2b of the whole member, for streams that are a whole zip member
    #                (lets the loader check it unpickles exactly these bytes); else b""
    start: int  # offset of its first opcode in the buffer it was read from; the pickle is
    #             exactly the bytes [start, analysis.end) (the loader unpickles that slice)

    def __init__(
        self, name: str, analysis: PickleAnalysis, digest: bytes = b"", start: int = 0
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "analysis", analysis)
        set_field(self, "digest", digest)
        set_field(self, "start", start)


class Extracted(Record):
    """Everything the scanner needs to know about a file's content."""

    __slots__ = ("details", "findings", "format", "pickles", "records")
    format: str  # see FORMATS in ckptguard._formats
    pickles: tuple[PickleStream, ...]
    findings: tuple[FindingRecord, ...]
    details: Mapping[str, str]  # e.g. {"archive": "model", "torch_version": "..."}
    records: tuple[Member, ...]  # zip archives: every member as validated (offsets, sizes),
    #                              in central-directory order (ckptguard.load reads these)

    def __init__(
        self,
        format: str,
        pickles: tuple[PickleStream, ...] = (),
        findings: tuple[FindingRecord, ...] = (),
        details: Mapping[str, str] | None = None,
        records: tuple[Member, ...] = (),
    ) -> None:
        set_field(self, "format", format)
        set_field(self, "pickles", pickles)
        set_field(self, "findings", findings)
        set_field(self, "details", {} if details is None else details)
        set_field(self, "records", records)
