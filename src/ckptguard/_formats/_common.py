"""Shared helpers of the format readers: the buffer type, errors, bounded decompression."""

from __future__ import annotations

import mmap
import zlib

try:  # hashlib.blake2b is this very function; importing hashlib also loads OpenSSL (start-up)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without the _blake2 module
    from hashlib import blake2b

from ckptguard._errors import CorruptCheckpointError, FormatError, PickleError
from ckptguard._pickle import OPAQUE, PickleAnalysis, analyze_pickle
from ckptguard._pickle._analysis import PickleLimits
from ckptguard._results import FindingRecord
from ckptguard._scan_rules import (
    FORMAT_FRAME_TAIL,
    PICKLE_TRAILING_DATA,
    SCAN_ERROR,
    ZIP_INFLATE_LIMIT,
)
from ckptguard._verdict import Severity

from ._extracted import PickleStream
from ._framing import Buffer as Buffer  # noqa: PLC0414 - re-exported
from ._framing import frame_tail

# The magic numbers the dispatcher needs before it imports the reader they select.
NPY_MAGIC = b"\x93NUMPY"  # numpy .npy files
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a pre-1.6 torch.save file
PROTOCOL_VERSION = 1001  # the second pickle of a pre-1.6 torch.save file

# A deflated member that ckptguard must read whole (a pickle, a .npy header) may inflate to at
# most INFLATE_RATIO times its compressed size (at least INFLATE_FLOOR, at most INFLATE_MAX):
# the bound is checked on the declared size before inflating, and the inflater never produces
# more than the declared size, so a member that lies about its size is caught too. torch.save
# stores members uncompressed; pickles compress well under 100:1.
INFLATE_FLOOR = 32 << 20
INFLATE_RATIO = 100
INFLATE_MAX = 1 << 30
# ckptguard.load refuses to read a data.pkl record larger than this into memory.
MAX_PICKLE_MEMBER = 4 << 30


def corrupt(
    problem: str, *, hint: str | None = None, fmt: str | None = None, rule: str = SCAN_ERROR
) -> CorruptCheckpointError:
    return FormatError(problem, rule=rule, hint=hint, format=fmt)


def inflate_limit(compressed_size: int) -> int:
    """The most bytes a deflated member of ``compressed_size`` bytes may inflate to."""
    return min(INFLATE_MAX, max(INFLATE_FLOOR, INFLATE_RATIO * compressed_size))


def error_finding(rule: str, message: str, location: str | None = None) -> FindingRecord:
    return FindingRecord(rule=rule, severity=Severity.ERROR, message=message, location=location)


def inflate(raw: bytes, expected: int, name: str) -> bytes:
    """Decompress a raw-deflate member, refusing anything but exactly ``expected`` bytes."""
    limit = inflate_limit(len(raw))
    if expected > limit:
        raise corrupt(
            f"zip member {name!r} declares {expected} bytes inflated from {len(raw)}: more than "
            f"ckptguard inflates for a member it must read ({limit} bytes); refused unread",
            hint="if the file is yours, re-save it with torch.save (members stored, not deflated)",
            rule=ZIP_INFLATE_LIMIT,
        )
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(raw, expected + 1)
    except zlib.error as exc:
        raise corrupt(f"zip member {name!r} is not valid deflate data ({exc})") from None
    if len(out) != expected or not d.eof or d.unconsumed_tail:
        raise corrupt(
            f"zip member {name!r} inflates to a different size than its header says "
            f"({len(out)}{'+' if d.unconsumed_tail else ''} vs {expected} bytes)"
        )
    return out


def stream_digest(data: Buffer | memoryview) -> bytes:
    """The digest the loader compares against the pickle bytes torch hands to the unpickler."""
    if not isinstance(data, (bytes, mmap.mmap, memoryview)):
        data = data[:]  # a remote object read by ranges
    return blake2b(data, digest_size=32).digest()


def analyse_stream(
    data: Buffer | memoryview, name: str, limits: PickleLimits, *, start: int = 0
) -> PickleStream:
    analysis = analyze_pickle(data, start=start, where=name, limits=limits, fold_value=False)
    digest = stream_digest(data) if start == 0 else b""
    return PickleStream(name=name, analysis=analysis, digest=digest, start=start)


def analyse_all(
    data: Buffer, name: str, limits: PickleLimits
) -> tuple[list[PickleStream], list[FindingRecord]]:
    """Analyse every pickle in a row, the way repeated ``pickle.load`` calls would read them.

    Bytes after the last complete pickle that do not form another pickle are an ERROR finding;
    globals referenced before the point where they break are still reported.
    """
    streams: list[PickleStream] = []
    findings: list[FindingRecord] = []
    pos, size, n = 0, len(data), 0
    while pos < size:
        n += 1
        label = name if n == 1 else f"{name} (pickle {n} at byte {pos})"
        try:
            analysis = analyze_pickle(data, start=pos, where=label, limits=limits)
        except PickleError as exc:
            if n == 1:
                raise
            findings.append(
                error_finding(
                    PICKLE_TRAILING_DATA,
                    f"{size - pos} bytes after the last complete pickle are not a valid pickle: "
                    f"{exc.problem}",
                    f"{name}@{pos}",
                )
            )
            if exc.partial:
                streams.append(PickleStream(label, _partial_analysis(exc, pos), start=pos))
            break
        streams.append(PickleStream(label, analysis, start=pos))
        for other in analysis.other_ends:  # a file object reads the next pickle elsewhere
            streams.append(_unframed_rest(data, other, label, limits))
        if analysis.end <= pos:  # defensive: the analyser must always make progress
            raise corrupt(f"pickle analysis made no progress at byte {pos}")
        problem = frame_tail(data, pos, analysis.end) if analysis.end < size else None
        if problem is not None:
            findings.append(
                error_finding(
                    FORMAT_FRAME_TAIL,
                    f"{label}: {problem}; a loader that reads the pickles one after the other "
                    "would start the next one elsewhere than ckptguard did",
                    f"{name}@{pos}",
                )
            )
            # read on from the STOP as well: an opened file that read the frame in place
            # (peek) starts its next pickle there, and its globals must be reported too
        pos = analysis.end
    return streams, findings


def _unframed_rest(
    data: Buffer | memoryview, pos: int, label: str, limits: PickleLimits
) -> PickleStream:
    """The pickles a file object reads from ``pos``, where it is left after an ambiguous pickle:
    their globals are reported too (the frame's finding makes the file an error)."""
    from ckptguard._pickle._vm import globals_in_a_row  # noqa: PLC0415

    found = globals_in_a_row(data, pos, 64, where=f"{label} (file object)", limits=limits)
    name = f"{label} (then as a file object reads on from byte {pos})"
    return PickleStream(name, _partial_analysis(PickleError(name, partial=found), pos))


def _partial_analysis(exc: PickleError, pos: int) -> PickleAnalysis:
    return PickleAnalysis(
        protocol=0,
        end=pos,
        globals=exc.partial,
        findings=(),
        persistent_ids=(),
        value=OPAQUE,
        opcodes=0,
    )
