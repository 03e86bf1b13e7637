"""Shared helpers of the format readers: the buffer type, errors, bounded decompression."""

from __future__ import annotations

import mmap
import zlib

try:  # hashlib.blake2b is this very function; importing hashlib also loads OpenSSL (start-up)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without the _blake2 module
    from hashlib import blake2b

from ckptguard._errors import CorruptCheckpointError
from ckptguard._pickle import OPAQUE, PickleAnalysis, PickleError, analyze_pickle
from ckptguard._pickle._types import PickleLimits
from ckptguard._results import FindingRecord
from ckptguard._verdict import Severity

from ._types import PickleStream

Buffer = bytes | mmap.mmap

# The magic numbers the dispatcher needs before it imports the reader they select.
NPY_MAGIC = b"\x93NUMPY"  # numpy .npy files
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a pre-1.6 torch.save file

# A pickle member larger than this is refused rather than decompressed into memory.
MAX_PICKLE_MEMBER = 4 << 30


def corrupt(
    problem: str, *, hint: str | None = None, fmt: str | None = None
) -> CorruptCheckpointError:
    return CorruptCheckpointError(problem, hint=hint, format=fmt)


def error_finding(rule: str, message: str, location: str | None = None) -> FindingRecord:
    return FindingRecord(rule=rule, severity=Severity.ERROR, message=message, location=location)


def inflate(raw: bytes, expected: int, name: str) -> bytes:
    """Decompress a raw-deflate member, refusing anything but exactly ``expected`` bytes."""
    if expected > MAX_PICKLE_MEMBER:
        raise corrupt(f"zip member {name!r} declares {expected} bytes: too large to analyse")
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
    return blake2b(data, digest_size=32).digest()


def analyse_stream(
    data: Buffer | memoryview, name: str, limits: PickleLimits, *, start: int = 0
) -> PickleStream:
    analysis = analyze_pickle(data, start=start, where=name, limits=limits, fold_value=False)
    digest = stream_digest(data) if start == 0 else b""
    return PickleStream(name=name, analysis=analysis, digest=digest, start=start)


def analyse_all(
    data: Buffer | memoryview, name: str, limits: PickleLimits
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
                    "pickle-trailing-data",
                    f"{size - pos} bytes after the last complete pickle are not a valid pickle: "
                    f"{exc.problem}",
                    f"{name}@{pos}",
                )
            )
            if exc.partial:
                streams.append(PickleStream(label, _partial_analysis(exc, pos), start=pos))
            break
        streams.append(PickleStream(label, analysis, start=pos))
        if analysis.end <= pos:  # defensive: the analyser must always make progress
            raise corrupt(f"pickle analysis made no progress at byte {pos}")
        pos = analysis.end
    return streams, findings


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
