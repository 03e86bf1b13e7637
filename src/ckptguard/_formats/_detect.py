"""Detect a checkpoint's format from its bytes and dispatch to its reader; fail closed.

``read_file`` maps the file (tensor data is never read), detects the format from its bytes,
and returns an :class:`Extracted`; anything unreadable, truncated or inconsistent raises
:class:`~ckptguard.CorruptCheckpointError` with a diagnosis.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable

from ckptguard._errors import CorruptCheckpointError, PickleError
from ckptguard._pickle import DEFAULT_LIMITS, analyze_pickle
from ckptguard._pickle._analysis import OPAQUE, GlobalConst, PickleLimits
from ckptguard._scan_rules import FORMAT_SAFETENSORS_PICKLE, FORMAT_TAR, TORCH_LEGACY_MAGIC_OBJECT

from ._common import (
    LEGACY_MAGIC_NUMBER,
    NPY_MAGIC,
    PROTOCOL_VERSION,
    Buffer,
    analyse_all,
    corrupt,
    error_finding,
)

# The legacy and numpy readers are imported when a file needs them (start-up time: most
# checkpoints are zip archives).
from ._extracted import Extracted, PickleStream
from ._framing import importable, reaches_code
from ._safetensors import looks_like_safetensors, read_safetensors
from ._tar import tar_would_open
from ._text import classify_text, text_error
from ._torchzip import read_zip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._source import SourceBuffer

FORMATS = (
    "pytorch-zip",
    "torchscript",
    "pytorch-legacy",
    "pickle",
    "numpy",
    "numpy-npz",
    "safetensors",
)

# Files with these suffixes are checkpoints by name: when one is not recognised by content it
# is an error (a broken download, an LFS pointer), not "not a checkpoint".
MODEL_EXTENSIONS = frozenset(
    {
        ".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".safetensors", ".npy", ".npz",
        ".joblib", ".model", ".pt2", ".ptl", ".tar", ".mar", ".dat", ".data", ".h5",
    }
)  # fmt: skip

# Files up to this size are read into memory; larger ones are mapped (tensor data is never
# read: only the pages of the zip directory and the pickles are touched).
_READ_WHOLE = 1 << 20

_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_EMPTY = b"PK\x05\x06"
# First bytes of protocol 0/1 pickles (opcodes that can start a stream).
_PICKLE_START = frozenset(b"(}])NIJKLFGSVUXTcdlptM\x80")
_OTHER_MAGIC = {
    b"GGUF": "a GGUF model file (llama.cpp)",
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (e.g. Keras .h5)",
    b"\x1f\x8b": "a gzip-compressed file",
    b"7z\xbc\xaf'\x1c": "a 7-Zip archive",
    b"BZh": "a bzip2-compressed file",
    b"\xfd7zXZ\x00": "an xz-compressed file",
}


# Every pickle opcode: pickle.load accepts a stream that starts with any of them.
PICKLE_OPCODES = frozenset(
    b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}\x80\x81\x82\x83\x84\x85\x86\x87\x88"
    b"\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)
# A file whose first byte is an opcode is only called "not a pickle" when ckptguard's pickle
# analysis of the whole file (read up to this size) fails early, before any global, at a
# point where pickle.load fails as well: a larger file is scanned in full.
_SNIFF_WHOLE = 64 << 20
_SNIFF_FAIL_WITHIN = 256


def sniff(path: str | os.PathLike[str]) -> str:
    """Cheap guess of a file's format from its bytes: a format name or ``"other"``.

    ``"other"`` is a promise that the stock loaders would not run anything from the file: it
    does not start like a zip, npy or safetensors file, and either its first byte is no pickle
    opcode (pickle.load fails on it at once), or a pickle analysis of the whole file fails
    within its first bytes with no global, and no opcode that reaches code comes before.
    """
    return sniff_head(path)[0]


def sniff_head(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """:func:`sniff` and the first 4096 bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(4096)
        size = os.fstat(f.fileno()).st_size
    return sniff_data(head, size, lambda: _whole(path)), head


def sniff_data(head: bytes, size: int, whole: Callable[[], Buffer]) -> str:
    """:func:`sniff` of an object of ``size`` bytes starting with ``head`` (its first 4096
    bytes); ``whole()`` gives its bytes when the pickle test needs them."""
    if head.startswith((_ZIP_LOCAL, _ZIP_EMPTY)):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "numpy"
    if len(head) >= 10 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2:
        return "safetensors"
    if tar_would_open(head):
        return "tar"
    if not head or head[0] not in PICKLE_OPCODES:
        return "other"
    if head[:1] == b"\x80" or size > _SNIFF_WHOLE:
        return "pickle"
    data = head if size <= len(head) else whole()
    return "other" if _not_a_pickle(data) else "pickle"


def _not_a_pickle(data: Buffer) -> bool:
    """pickle.load would fail on ``data`` before reaching any code (see :func:`sniff`)."""
    return _fails_before_code(data, within=_SNIFF_FAIL_WITHIN)


def _fails_before_code(data: Buffer, within: int | None = None) -> bool:
    """pickle.load of ``data`` fails before it imports a global or reaches code (a file of
    another format whose first bytes are pickle opcodes); with ``within``, it also fails in
    its first ``within`` bytes."""
    try:
        analyze_pickle(data, where="pickle")
    except PickleError as exc:
        if exc.over_limit:  # a bound of ckptguard's: pickle.load reads on
            return False
        failed_at = exc.offset if exc.offset is not None else len(data)
        return (
            (within is None or failed_at <= within)
            and not any(importable(g.module) for g in exc.partial)
            and not reaches_code(data, failed_at)
        )
    return False


def _whole(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read(_SNIFF_WHOLE)


def read_file(path: str | os.PathLike[str], *, limits: PickleLimits = DEFAULT_LIMITS) -> Extracted:
    """Detect the format of the file at ``path`` by content and analyse every pickle in it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise corrupt(
                "the file is empty (0 bytes)", hint="re-download or re-save it", fmt="empty"
            )
        if size <= _READ_WHOLE:  # one read is cheaper than mapping and unmapping
            return _read(f.read(), limits)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _read(mm, limits)


def read_fd(fd: int, *, limits: PickleLimits = DEFAULT_LIMITS) -> Extracted:
    """Like :func:`read_file` for an open regular file (memory-mapped, from its start)."""
    if os.fstat(fd).st_size == 0:
        raise corrupt("the file is empty (0 bytes)", hint="re-download or re-save it", fmt="empty")
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
        return _read(mm, limits)


def read_source(buf: SourceBuffer, *, limits: PickleLimits = DEFAULT_LIMITS) -> Extracted:
    """Like :func:`read_file` for an object read by ranges (only the ranges the readers ask
    for are fetched: see :mod:`._source`)."""
    if len(buf) == 0:
        raise corrupt("the file is empty (0 bytes)", hint="re-download or re-save it", fmt="empty")
    if buf.startswith(_ZIP_LOCAL):  # dispatch on the magic alone: no tensor bytes read
        return read_zip(buf, limits)
    return _read(buf, limits)


def read_buffer(
    data: bytes | bytearray | memoryview, *, name: str = "<buffer>",
    limits: PickleLimits = DEFAULT_LIMITS,
) -> Extracted:  # fmt: skip
    """Like :func:`read_file` for bytes already in memory."""
    buf = bytes(data)
    if not buf:
        raise corrupt(f"{name}: no data (0 bytes)", fmt="empty")
    return _read(buf, limits)


def _read(buf: Buffer, limits: PickleLimits) -> Extracted:
    head = bytes(buf[:4096])
    if head.startswith((_ZIP_LOCAL, _ZIP_EMPTY)):
        return read_zip(buf, limits)
    if tar_would_open(head):
        return _read_tar_polyglot(buf, head, limits)
    return _read_other(buf, head, limits)


_TAR_PROBLEM = (
    "the first 512 bytes are a header Python's tarfile accepts (checksum valid; old V7 tars "
    "need no 'ustar' magic): torch.load, given a path or an open file, opens such a file as a "
    "tar archive and unpickles the tar's members instead of the bytes ckptguard analysed"
)


def _read_tar_polyglot(buf: Buffer, head: bytes, limits: PickleLimits) -> Extracted:
    """A file that tarfile opens: an error whatever else it is (its pickles still reported)."""
    return _read_polyglot(_read_other, buf, head, limits, FORMAT_TAR)


# What each polyglot rule says, and the next step it suggests.
_POLYGLOT = {
    FORMAT_TAR: (
        _TAR_PROBLEM,
        "PyTorch's pre-0.4 tar format is not supported: load it once with a trusted old "
        "PyTorch in a sandbox and re-save it",
        "tar",
    ),
    FORMAT_SAFETENSORS_PICKLE: (
        "a safetensors file whose bytes, from the header length on, are also a pickle: "
        "pickle.load, numpy.load(allow_pickle=True) and torch.load(weights_only=False) run that "
        "pickle instead of reading the tensors ckptguard checked",
        "load it only with the safetensors library, or re-save it with safetensors",
        "safetensors",
    ),
}


def _read_polyglot(
    reader: Callable[[Buffer, bytes, PickleLimits], Extracted],
    buf: Buffer, head: bytes, limits: PickleLimits, rule: str,
) -> Extracted:  # fmt: skip
    """A file that a stock loader reads otherwise than ckptguard: an error whatever else it is;
    what ``reader`` finds in it (the pickles the other reading meets) is still reported."""
    problem, hint, fmt = _POLYGLOT[rule]
    try:
        found = reader(buf, head, limits)
    except CorruptCheckpointError as exc:
        if isinstance(exc, PickleError) and exc.partial:
            raise  # the globals it reached before breaking are the news (verdict dangerous)
        raise corrupt(
            f"{problem} (read as a checkpoint: {exc.problem})", hint=hint, fmt=fmt, rule=rule
        ) from None
    finding = error_finding(rule, problem, "byte 0")
    return Extracted(found.format, found.pickles, (finding, *found.findings), found.details)


def _read_other(buf: Buffer, head: bytes, limits: PickleLimits) -> Extracted:
    if head.startswith(NPY_MAGIC):
        from ._npy import read_npy  # noqa: PLC0415

        return read_npy(buf, "array", limits)
    if looks_like_safetensors(buf):
        found = read_safetensors(buf)
        if buf[0] in PICKLE_OPCODES and not _fails_before_code(buf):
            return _read_polyglot(_read_pickles, buf, head, limits, FORMAT_SAFETENSORS_PICKLE)
        return found
    if head[257:262] == b"ustar":
        raise corrupt(
            "a tar archive: PyTorch's pre-0.4 tar checkpoint format is not supported",
            hint="load it once with a trusted old PyTorch in a sandbox and re-save it",
            fmt="tar",
        )
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise corrupt(f"this is {what}, not a PyTorch checkpoint", fmt="other")
    if head[0] in _PICKLE_START or (head[0] in PICKLE_OPCODES and not _not_a_pickle(buf)):
        return _read_pickles(buf, head, limits)
    kind = classify_text(head)
    if kind is not None:
        raise text_error(kind, head)
    if buf[-22:-18] == _ZIP_EMPTY:
        raise corrupt(
            "data before a zip archive: PyTorch does not read such files, other tools do",
            fmt="zip",
        )
    raise corrupt(
        "unrecognised file format: not a PyTorch, pickle, numpy or safetensors file",
        hint="check that this is the model file and that it downloaded completely",
        fmt="unknown",
    )


def _read_pickles(buf: Buffer, head: bytes, limits: PickleLimits) -> Extracted:
    try:
        first = analyze_pickle(buf, where="pickle", limits=limits)
    except PickleError as exc:
        kind = None if exc.partial else classify_text(head)
        if kind is not None:  # prose that merely starts with an opcode character
            raise text_error(kind, head) from None
        exc.format = "pickle"
        raise  # with the globals reached before the failure (exc.partial)
    if first.value == LEGACY_MAGIC_NUMBER and type(first.value) is int:
        from ._legacy import read_legacy  # noqa: PLC0415

        return read_legacy(buf, first, limits)
    if first.end == len(buf):
        return Extracted("pickle", pickles=(PickleStream("pickle", first),))
    streams, findings = analyse_all(buf, "pickle", limits)
    if (
        len(streams) > 1
        and _may_equal(first.value, LEGACY_MAGIC_NUMBER)
        and _may_equal(streams[1].analysis.value, PROTOCOL_VERSION)
    ):
        findings.append(error_finding(TORCH_LEGACY_MAGIC_OBJECT, _MAGIC_PROBLEM, "pickle 1"))
    return Extracted("pickle", pickles=tuple(streams), findings=tuple(findings))


_MAGIC_PROBLEM = (
    "the first pickle builds an object that may compare equal to torch's legacy magic number, "
    "and the second one equal to its protocol version: torch.load tests them with '!=', so it "
    "may read this file as a pre-1.6 checkpoint (persistent ids, storage sizes, raw storage "
    "data) that ckptguard checked only as plain pickles in a row"
)


def _may_equal(value: object, number: int) -> bool:
    """Whether a pickle's folded result may compare equal to ``number`` (objects built by a
    call, such as ``Decimal`` or ``Fraction``, and globals may; other constants exactly)."""
    if value is OPAQUE or isinstance(value, GlobalConst):
        return True
    return isinstance(value, (int, float, complex)) and value == number
