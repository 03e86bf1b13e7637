"""``ckptguard.load``: scan the file, refuse what is not allowed, load exactly what was scanned.

The order of work for one call:

1. resolve the policy (``allow=``, ``policy=``, ``$CKPTGUARD_POLICY``, ``pyproject.toml``);
2. open the file once and scan it (a zip archive over 1 MiB is memory-mapped, so only its
   central directory and pickles are read; anything else is read into memory once, and that
   buffer is both scanned and loaded);
3. refuse anything whose verdict is not ``safe`` with every global and finding explained;
4. load it with ckptguard's own container reader (:mod:`._container`): the pickles the scan
   analysed, byte for byte, through a per-call unpickler (:mod:`._engine`) that imports only
   the globals this scan approved, and storages read at the offsets the scan validated.
   ``torch.load`` is never called: its dispatch (TorchScript, tar, case-insensitive record
   lookups) never sees the file.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ckptguard._assess import report_for
from ckptguard._convert._restore import restore
from ckptguard._convert._safetensors import read_checkpoint_bytes
from ckptguard._errors import CheckpointError, CorruptCheckpointError, LoadWarning, UsageError
from ckptguard._formats import Extracted, read_buffer, read_fd
from ckptguard._formats._detect import read_source
from ckptguard._formats._source import SourceBuffer
from ckptguard._gc import gc_paused
from ckptguard._grammar import a_or_an
from ckptguard._load._container import (
    EnvironmentFailure,
    Request,
    load_legacy,
    load_zip,
    mmap_on_legacy,
)
from ckptguard._load._refusal import refusal
from ckptguard._load._registry import with_torch_registry
from ckptguard._load._source import Source
from ckptguard._policy import Policy, PolicyArg, resolve_policy
from ckptguard._results import FileRecord
from ckptguard._verdict import FileVerdict

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_TRUE = ("1", "y", "yes", "true")


# Zip archives up to this size are read into memory; larger ones are mapped for the scan and
# their storages read with pread (as ckptguard._formats.read_file decides).
_READ_WHOLE = 1 << 20


@dataclass(frozen=True)
class _Scanned:
    """A scanned file and where its bytes are."""

    name: str  # the path as given, or "<file object>"
    source: Source  # the bytes that were scanned (in memory), or the descriptor they came from
    mmap_path: str | None  # a path that maps the very same file (None for file objects)
    extracted: Extracted
    report: FileRecord


def _name_of(f: object) -> str:
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else "<file object>"


def _scan_fd(fd: int, name: str, policy: Policy, mmap_path: str | None) -> _Scanned:
    size = os.fstat(fd).st_size
    if size > _READ_WHOLE and os.pread(fd, 4, 0).startswith(_ZIP_MAGIC):
        extracted = _read(lambda: read_fd(fd), name)
        source = Source(name, size, fd=fd)
    else:  # legacy/safetensors/small zip: scan and load the very same bytes
        data = _read_fd_bytes(fd, size)
        extracted = _read(lambda: read_buffer(data, name=name), name)
        source = Source(name, len(data), data=data)
    report = report_for(name, extracted, policy, size)
    return _Scanned(name, source, mmap_path, extracted, report)


def _scan_bytes(f: Any, policy: Policy) -> _Scanned:
    read = getattr(f, "read", None)
    if read is None:
        raise UsageError(
            f"ckptguard.load takes a path or a binary file object, not {type(f).__name__}"
        )
    name = _name_of(f)
    data = read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"{name}: the file object must be opened in binary mode ('rb')")
    data = bytes(data)
    extracted = _read(lambda: read_buffer(data, name=name), name)
    report = report_for(name, extracted, policy, len(data))
    return _Scanned(name, Source(name, len(data), data=data), None, extracted, report)


def _fd_path(fd: int, name: str) -> str:
    """A path naming the open file itself (not whatever is at ``name`` by now), for mmap."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else name


def _regular_fd(f: Any) -> int | None:
    """The descriptor of a binary file object on a regular file positioned at its start."""
    try:
        if f.tell() != 0 or not f.seekable():
            return None
        fd = f.fileno()
        if not isinstance(fd, int) or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


def _read_fd_bytes(fd: int, size: int) -> bytes:
    chunks, pos = [], 0
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read(reader: Any, name: str) -> Extracted:
    try:
        result: Extracted = reader()
    except CheckpointError as exc:
        raise exc.with_path(name) from None
    return result


def _approved(extracted: Extracted, name: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Map each global as written in the pickles to the name the scan resolved it to."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for stream in extracted.pickles:
        for g in stream.analysis.globals:
            raw = g.raw or (g.module, g.name)
            target = (g.module, g.name)
            if out.setdefault(raw, target) != target:
                raise CorruptCheckpointError(
                    f"the pickle names {raw[0]}.{raw[1]} under two pickle protocols that "
                    "resolve it differently: refused",
                    path=name,
                    hint=f"ckptguard scan {name}",
                )
    return out


def drop_unsafe_kwargs(kwargs: dict[str, Any], *, stacklevel: int) -> None:
    """Remove ``weights_only``/``pickle_module`` from torch.load kwargs, warning when ignored.

    ``stacklevel`` counts from the caller of this function, as for :func:`warnings.warn`.
    """
    weights_only = kwargs.pop("weights_only", None)
    if weights_only is False:
        warnings.warn(
            "ckptguard.load ignores weights_only=False: it never unpickles outside its policy "
            "(allow a trusted class with allow=[...] instead)",
            LoadWarning,
            stacklevel=stacklevel + 1,
        )
    if kwargs.pop("pickle_module", None) is not None:
        warnings.warn(
            "ckptguard.load ignores pickle_module=: it unpickles with its own policy-enforcing "
            "unpickler",
            LoadWarning,
            stacklevel=stacklevel + 1,
        )
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE:
        raise UsageError(
            "TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, and with it PyTorch refuses every unpickler "
            "but its own, including ckptguard's policy-enforcing one",
            hint="unset TORCH_FORCE_WEIGHTS_ONLY_LOAD: ckptguard.load is already weights-only "
            "safe by its policy",
        )


def load(
    f: Any,
    map_location: Any = None,
    *,
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
    mmap: bool | None = None,
    restore_types: bool = False,
    **kwargs: Any,
) -> Any:
    """A drop-in for ``torch.load`` that loads only what the policy allows.

    ``f`` is a path or a binary file object, ``map_location`` and ``mmap`` mean what they mean
    for ``torch.load``; ``allow`` adds trusted globals (``"module.Name"`` or ``"package.*"``) for
    this call only; ``policy`` is a policy file or :class:`~ckptguard._policy.Policy` (default:
    ``$CKPTGUARD_POLICY``, else ``[tool.ckptguard]`` in the nearest ``pyproject.toml``, else the
    shipped profiles). Other keyword arguments go to the unpickler as in ``torch.load``;
    ``weights_only=False`` and ``pickle_module=`` are ignored with a :class:`LoadWarning`.
    ``restore_types=True`` rebuilds, in a file written by ``ckptguard convert``, the original
    objects recorded in its ``__ckptguard__`` entry whose types the policy allows.

    Raises :class:`~ckptguard.UnsafeCheckpointError` when the file needs globals that are not
    allowed, :class:`~ckptguard.CorruptCheckpointError` when it is unreadable or inconsistent,
    and ``FileNotFoundError`` when it does not exist.
    """
    drop_unsafe_kwargs(kwargs, stacklevel=2)
    resolved = resolve_policy(allow=allow, policy=policy, targets=[f])
    # Classes the program registered with torch.serialization.add_safe_globals (read now).
    resolved, expected = with_torch_registry(resolved)
    # Scanning and unpickling an optimizer state build hundreds of thousands of objects that
    # all live on: the cyclic collector would walk them again and again (a quarter of the load).
    with gc_paused():
        obj = _load(f, map_location, resolved, mmap, kwargs, expected=expected)
    if restore_types:
        return restore(obj, policy=resolved)
    return obj


def _load(
    f: Any,
    map_location: Any,
    resolved: Policy,
    mmap: bool | None,
    kwargs: dict[str, Any],
    *,
    expected: dict[str, Any],
) -> Any:
    if mmap is None:
        from torch.utils.serialization import config  # noqa: PLC0415

        mmap = bool(config.load.mmap)
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        if isinstance(name, bytes):  # pragma: no cover - os.PathLike[bytes]
            name = os.fsdecode(name)
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(name, flags)  # FileNotFoundError names the path
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CorruptCheckpointError(
                    "not a regular file (a directory, FIFO or device): not a checkpoint",
                    path=name,
                )
            scanned = _scan_fd(fd, name, resolved, _fd_path(fd, name))
            return _load_scanned(scanned, f, map_location, mmap, kwargs, expected=expected)
        finally:
            os.close(fd)
    file_fd = _regular_fd(f)
    if file_fd is not None:  # an open file: map it, don't copy it
        scanned = _scan_fd(file_fd, _name_of(f), resolved, None)
    else:
        scanned = _scan_bytes(f, resolved)
    return _load_scanned(scanned, f, map_location, mmap, kwargs, expected=expected)


def _load_scanned(
    scanned: _Scanned,
    f: Any,
    map_location: Any,
    mmap: bool,
    kwargs: dict[str, Any],
    *,
    expected: dict[str, Any],
) -> Any:
    if scanned.report.verdict is not FileVerdict.SAFE:
        raise refusal(scanned.report)
    fmt = scanned.extracted.format
    if fmt == "safetensors":
        return _load_safetensors(scanned, map_location)
    if fmt not in ("pytorch-zip", "pytorch-legacy"):
        raise CheckpointError(
            f"this is {a_or_an(fmt)} file, not a PyTorch checkpoint: torch.load cannot read "
            "it either",
            path=scanned.name,
            hint=_numpy_hint(scanned)
            if fmt in ("numpy", "numpy-npz")
            else _OTHER_FORMAT_HINT.get(fmt, f"ckptguard scan {scanned.name}"),
            format=fmt,
        )
    if mmap and fmt == "pytorch-legacy":
        raise mmap_on_legacy(f)
    if mmap and scanned.mmap_path is None:
        raise ValueError("f must be a file path in order to use the mmap argument")
    load_args = dict(kwargs)
    load_args.setdefault("encoding", "utf-8")
    request = Request(
        name=scanned.name,
        source=scanned.source,
        extracted=scanned.extracted,
        approved=_approved(scanned.extracted, scanned.name),
        map_location=map_location,
        mmap_path=scanned.mmap_path if mmap else None,
        load_args=load_args,
        expected=expected,
    )
    name = scanned.name
    # The scan's records (one per persistent id on big optimizer states) are no longer needed.
    del scanned
    try:
        return load_zip(request) if fmt == "pytorch-zip" else load_legacy(request)
    except CheckpointError:
        raise
    except EnvironmentFailure as exc:  # torch's own error, as torch.load raises it
        raise exc.original from None
    except Exception as exc:  # damaged tensor metadata, a storage torch cannot build, ...
        raise CorruptCheckpointError(
            f"it could not be loaded: {type(exc).__name__}: {exc}", path=name,
            hint=f"ckptguard scan {name}", format=fmt,
        ) from exc  # fmt: skip


_OTHER_FORMAT_HINT = {
    "pickle": "a plain pickle is not a checkpoint; `ckptguard scan` shows what it would import",
}


def _numpy_hint(scanned: _Scanned) -> str:
    """Advice that works for this numpy file: plain arrays load with allow_pickle=False;
    object arrays (pickles inside) need allow_pickle=True, which this scan just vetted."""
    name = scanned.name
    if not scanned.extracted.pickles:
        return f"it holds plain arrays only: numpy.load({name!r}, allow_pickle=False) reads it"
    return (
        f"it holds object arrays (pickles), which numpy.load({name!r}, allow_pickle=False) "
        "refuses: this scan found only vetted globals in them, so numpy.load(path, "
        "allow_pickle=True) imports nothing else; scan it again (ckptguard scan "
        f"{name}) if the file can change before you load it"
    )


def _load_safetensors(scanned: _Scanned, map_location: Any) -> Any:
    # safetensors files are always read into memory: the scanned bytes are the loaded bytes.
    data = scanned.source.data
    assert data is not None  # an invariant of _scan_fd / _scan_bytes
    return read_checkpoint_bytes(data, map_location, name=scanned.name)


# A zip item at least this large inside a container is scanned and loaded through ranged reads
# of the container (its storage records read straight into their storages); smaller ones and
# other formats are read into memory and loaded from there.
_RANGED = 1 << 20


class _RangeBytes:
    """A :class:`~ckptguard._formats._source.ByteSource` over ``source`` (a byte range of an
    open file): exact reads inside the range only."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.size = source.size

    def read(self, offset: int, length: int) -> bytes:
        return self.source.read(offset, length)

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self.source.read(o, n) for o, n in ranges]


def load_range(
    fd: int, offset: int, length: int, name: str, policy: Policy, *, map_location: Any = None
) -> Any:
    """:func:`load` of the ``length`` bytes at ``offset`` of the open regular file ``fd`` (an
    item inside a container, e.g. a DCP shard range the caller bounds-checked): the scan and the
    load read the very same range, and nothing outside it."""
    return load_range_with(fd, offset, length, name, policy, map_location=map_location)[0]


def load_range_with(
    fd: int, offset: int, length: int, name: str, policy: Policy, *, map_location: Any = None
) -> tuple[Any, Extracted]:
    """:func:`load_range`, and what its scan extracted (the zip records, validated)."""

    resolved, expected = with_torch_registry(policy)
    source = Source(name, length, fd=fd, base=offset)
    with gc_paused():
        if length < _RANGED or source.read(0, 4) != b"PK\x03\x04":
            data = source.read(0, length)
            extracted = _read(lambda: read_buffer(data, name=name), name)
            report = report_for(name, extracted, resolved, length)
            scanned = _Scanned(name, Source(name, length, data=data), None, extracted, report)
            obj = _load_scanned(scanned, name, map_location, False, {}, expected=expected)
            return obj, extracted
        with SourceBuffer(_RangeBytes(source)) as buf:
            extracted = _read(lambda: read_source(buf), name)
            report = report_for(name, extracted, resolved, length)
            scanned = _Scanned(name, source, None, extracted, report)
            obj = _load_scanned(scanned, name, map_location, False, {}, expected=expected)
            return obj, extracted
