"""ckptguard's own reader for PyTorch checkpoints: exactly the bytes the scan validated.

``torch.load`` chooses what to read by itself: its zip reader lists records with names cut at
511 bytes and looks them up ignoring case (a crafted archive takes the TorchScript path), its
legacy reader may open the file as a tar, and CPython's unpickler reading a legacy file from a
stream can start a pickle where a linear reader does not (a FRAME's tail is skipped after
STOP). So ``ckptguard.load`` never hands the file to it. It reads the container itself, once,
through the structures the scan validated (:class:`~ckptguard._formats.Extracted`):

* **zip** (``torch.save``'s default): the archive's ``data.pkl`` is read at the offsets of the
  validated member, and its digest must equal the digest of the pickle the scan analysed;
  storages are read from their ``data/<key>`` members at validated offsets (or sliced out of
  one mapping of the file for ``mmap=True``, as torch does);
* **legacy** (``_use_new_zipfile_serialization=False``): the five pickles are unpickled from
  exactly the byte ranges the scan analysed, each must be consumed to its last byte, and the
  raw storage section (per key: an 8-byte element count, then the bytes) must match the
  storages and fill the file exactly.

Storages, ``map_location``, byte order and sparse/dense rebuilds follow
``torch.load(weights_only=False)`` (torch's location helpers are used: they never read the
file), so a benign file loads to the same objects, bit for bit; see tests/_load/
test_owned_container.py for the differential tests.
"""

from __future__ import annotations

import ctypes
import inspect
import io
import mmap as mmap_module
import pickle
import struct
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ckptguard._errors import CheckpointError, CorruptCheckpointError
from ckptguard._formats import Extracted, PickleStream
from ckptguard._formats._common import MAX_PICKLE_MEMBER, stream_digest
from ckptguard._load import _torch as _t
from ckptguard._load._engine import build_unpickler
from ckptguard._load._layout import LayoutGuard
from ckptguard._load._source import Source

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORED = 0
_SMALL_RECORD = 4096  # byteorder, .data/serialization_id: refused beyond this


class Request:
    """One load: the scanned file and what the caller asked for."""

    def __init__(
        self,
        *,
        name: str,
        source: Source,
        extracted: Extracted,
        approved: Mapping[tuple[str, str], tuple[str, str]],
        map_location: Any,
        mmap_path: str | None,
        load_args: dict[str, Any],
        expected: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.extracted = extracted
        self.approved = approved
        self.map_location = map_location
        self.mmap_path = mmap_path  # set when mmap=True: the file to map (same inode)
        self.load_args = load_args
        # names approved only because the program registered an object with torch: the
        # name must still resolve to that very object when the unpickler imports it
        self.expected = expected or {}

    def corrupt(self, problem: str) -> CorruptCheckpointError:
        fmt = self.extracted.format
        hint = f"ckptguard scan {self.name}"
        return CorruptCheckpointError(problem, path=self.name, hint=hint, format=fmt)


def _unpickle(
    req: Request,
    data: bytes,
    label: str,
    unpickler_cls: type[pickle.Unpickler],
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle exactly ``data``: every byte of it, and nothing after it."""
    stream = io.BytesIO(data)
    unpickler = unpickler_cls(stream, **req.load_args)
    if persistent_load is not None:
        unpickler.persistent_load = persistent_load  # type: ignore[method-assign]
    try:
        result = unpickler.load()
    except CheckpointError:  # find_class's refusal (an UnsafeCheckpointError is also an
        raise  # UnpicklingError) stays what it is
    except (pickle.UnpicklingError, EOFError) as exc:
        raise req.corrupt(
            f"Python's unpickler cannot read the {label} within the bytes the scan analysed "
            f"({exc}): it would read another pickle than the one scanned, refused"
        ) from None
    if stream.tell() != len(data):
        raise req.corrupt(
            f"the {label} ends at byte {stream.tell()} for Python's unpickler but at byte "
            f"{len(data)} for the scan: the two would read different pickles, refused"
        )
    return result


class EnvironmentFailure(Exception):
    """torch refused to place a valid storage on this machine (a CUDA storage where CUDA is not
    available, a device index past ``device_count()``, a ``map_location`` that names such a
    device or raises): ``torch.load`` raises the same error, so ``ckptguard.load`` re-raises
    ``original`` as it is rather than calling the file corrupt."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


def _restore(map_location: Any) -> Callable[[Any, str], Any]:
    fn: Callable[[Any, str], Any] = _t.serialization()._get_restore_location(map_location)

    def restore(storage: Any, location: str) -> Any:
        # the scan checked that ``location`` is a device torch knows (torch-bad-location): what
        # fails here is this machine or the caller's map_location, as under torch.load
        try:
            return fn(storage, location)
        except Exception as exc:
            raise EnvironmentFailure(exc) from None

    return restore


def _ascii(value: Any) -> Any:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _approved_unpickler(req: Request, guard: LayoutGuard) -> type[pickle.Unpickler]:
    return build_unpickler(
        req.approved, path=req.name, overrides=guard.overrides(), expected=req.expected
    )


# --------------------------------------------------------------------------------------------
# zip archives


def load_zip(req: Request) -> Any:
    torch, serialization = _t.torch(), _t.serialization()
    tls = serialization._serialization_tls

    ex = req.extracted
    prefix = ex.details.get("archive", "") + "/"
    records = {m.name: m for m in ex.records}
    pickle_member = records.get(prefix + "data.pkl")
    stream = _stream(ex, prefix + "data.pkl")
    if pickle_member is None or stream is None or not stream.digest or stream.start != 0:
        raise req.corrupt("the archive's data.pkl was not scanned as a whole member")
    if pickle_member.size > MAX_PICKLE_MEMBER:
        raise req.corrupt("the archive's data.pkl is too large")
    raw = bytearray(pickle_member.size)
    _read_record(req, pickle_member, memoryview(raw), "data.pkl")
    pickle_bytes = bytes(raw)
    del raw
    if stream_digest(pickle_bytes) != stream.digest:
        raise req.corrupt(
            "the archive's data.pkl is not the one ckptguard scanned (the file changed while "
            "it was being loaded): refused"
        )
    if stream.analysis.end != len(pickle_bytes):
        pickle_bytes = pickle_bytes[: stream.analysis.end]  # bytes after STOP are never read

    def small(rel: str) -> bytes | None:
        m = records.get(prefix + rel)
        if m is None:
            return None
        if m.size > _SMALL_RECORD:
            raise req.corrupt(f"the archive's {rel} record is {m.size} bytes: not a checkpoint")
        buf = bytearray(m.size)
        _read_record(req, m, memoryview(buf), rel)
        return bytes(buf)

    byteorder = small("byteorder")
    if byteorder is not None and byteorder not in (b"little", b"big"):
        raise req.corrupt(f"the archive's byteorder record is {byteorder[:20]!r}")
    if byteorder is None:
        default = serialization.get_default_load_endianness()
        if default in (serialization.LoadEndianness.LITTLE, None):
            byteorder = b"little"
        elif default == serialization.LoadEndianness.BIG:
            byteorder = b"big"
    swap = byteorder is not None and byteorder.decode() != sys.byteorder

    overall: Any = None
    if req.mmap_path is not None:
        shared = serialization.get_default_mmap_options() == mmap_module.MAP_SHARED
        overall = torch.UntypedStorage.from_file(req.mmap_path, shared, req.source.size)

    map_location = req.map_location
    restore_location = _restore(map_location)
    is_meta = serialization._is_meta_location(map_location)
    fake = _t.guards().detect_fake_mode(None) is not None
    skip_data = bool(tls.skip_data)
    guard = LayoutGuard(req.name)
    loaded: dict[str, Any] = {}
    untyped = torch.UntypedStorage
    typed_cls = torch.storage.TypedStorage
    storage_type_cls = _storage_type_class()

    def load_storage(dtype: Any, nbytes: int, key: str, location: str) -> Any:
        rel = f"data/{key}"
        m = records.get(prefix + rel)
        if m is None:
            raise req.corrupt(f"tensor storage {key!r} has no {prefix}{rel} record")
        if nbytes > m.size:
            raise req.corrupt(
                f"storage record {rel} holds {m.size} bytes but the pickle needs {nbytes}"
            )
        if fake or is_meta:
            storage = untyped(nbytes, device="meta")
            storage._checkpoint_offset = m.data_offset
        elif skip_data:
            storage = untyped(nbytes)
        elif overall is not None:
            if m.method != _STORED:
                raise req.corrupt(f"storage record {rel} is compressed: it cannot be mapped")
            storage = overall[m.data_offset : m.data_offset + nbytes]
        elif m.method == _STORED:
            storage = req.source.storage(torch, m.data_offset, nbytes)
        else:
            t = torch.empty(nbytes, dtype=torch.uint8)
            if nbytes:
                _read_record(req, m, memoryview(t.numpy()), rel, nbytes)
            storage = t.untyped_storage()[0:nbytes]
        if swap:
            storage.byteswap(dtype)
        if is_meta:
            wrap = storage
        elif not fake:
            wrap = restore_location(storage, location)
        else:
            storage._fake_device = location
            wrap = storage
        typed = typed_cls(wrap_storage=wrap, dtype=dtype, _internal=True)
        guard.name_storage(typed, "storage record", prefix + rel)
        if typed._data_ptr() != 0:
            loaded[key] = typed
        return typed

    def persistent_load(saved_id: Any) -> Any:
        if type(saved_id) is not tuple or len(saved_id) != 5:
            raise req.corrupt(f"persistent id {saved_id!r:.80} is not a torch storage reference")
        typename, storage_type, key, location, numel = saved_id
        if _ascii(typename) != "storage" or type(key) is not str:
            raise req.corrupt(f"persistent id {saved_id!r:.80} is not a torch storage reference")
        if storage_type is untyped:
            dtype = torch.uint8
        elif type(storage_type) is storage_type_cls:
            dtype = storage_type.dtype
        else:
            raise req.corrupt(f"persistent id {saved_id!r:.80} names no storage type")
        typed = loaded.get(key)
        if typed is not None:
            return typed
        location = _ascii(location)
        if type(numel) is not int or numel < 0 or type(location) is not str:
            raise req.corrupt(f"persistent id {saved_id!r:.80} has a bad size or location")
        return load_storage(dtype, numel * dtype.itemsize, key, location)

    unpickler_cls = _approved_unpickler(req, guard)
    previous = tls.map_location
    tls.map_location = map_location
    try:
        result = _unpickle(req, pickle_bytes, "archive's data.pkl", unpickler_cls, persistent_load)
    finally:
        tls.map_location = previous
    del pickle_bytes
    guard.validate_sparse(result)
    serialization_id = small(".data/serialization_id")
    torch._C._log_api_usage_metadata(
        "torch.load.metadata",
        {"serialization_id": (serialization_id or b"").decode("utf-8", "replace")},
    )
    return result


def _storage_type_class() -> Any:
    return _t.serialization().StorageType


def _stream(ex: Extracted, name: str) -> PickleStream | None:
    for s in ex.pickles:
        if s.name == name:
            return s
    return None


def _read_record(req: Request, m: Any, view: memoryview, what: str, n: int | None = None) -> None:
    """The first ``len(view)`` bytes of member ``m`` (stored or deflated) into ``view``."""
    if m.method == _STORED:
        req.source.read_into(m.data_offset, view)
        return
    if n is None or n == m.size:
        req.source.inflate_into(m.data_offset, m.compressed_size, view, f"record {what}")
        return
    whole = bytearray(m.size)  # a deflated storage record larger than its storage
    req.source.inflate_into(m.data_offset, m.compressed_size, memoryview(whole), f"record {what}")
    view[:] = memoryview(whole)[: view.nbytes]


# --------------------------------------------------------------------------------------------
# legacy files


def load_legacy(req: Request) -> Any:
    torch = _t.torch()
    tls = _t.serialization()._serialization_tls

    data = req.source.data
    if data is None:  # pragma: no cover - legacy files are always read into memory
        raise req.corrupt("legacy file not in memory")
    streams = req.extracted.pickles
    if len(streams) != 5:
        raise req.corrupt(f"a legacy file has five pickles; the scan found {len(streams)}")
    pos = 0
    spans: list[bytes] = []
    for s in streams:
        if s.start != pos or not pos < s.analysis.end <= len(data):
            raise req.corrupt(
                "the scan's pickles do not follow each other from the start of the file"
            )
        spans.append(data[s.start : s.analysis.end])
        pos = s.analysis.end
    raw_start = pos

    map_location = req.map_location
    restore_location = _restore(map_location)
    fake = _t.guards().active_fake_mode() is not None
    skip_data = bool(tls.skip_data)
    guard = LayoutGuard(req.name, deferred=True)
    roots: dict[Any, Any] = {}
    views: dict[Any, Any] = {}
    typed_cls = torch.storage.TypedStorage
    new_storage = torch.UntypedStorage
    storage_type_cls = _storage_type_class()
    budget = len(data) - raw_start  # no storage can hold more than the file has left

    def persistent_load(saved_id: Any) -> Any:
        if type(saved_id) is not tuple or not saved_id:
            raise req.corrupt(f"persistent id {saved_id!r:.80} is not a torch reference")
        typename = saved_id[0]
        if type(typename) is bytes:
            typename = typename.decode("ascii")
        if typename == "module" and len(saved_id) == 4:
            container, source_file, source = saved_id[1:]
            if not isinstance(container, type):
                raise req.corrupt("a module persistent id does not name a class")
            if source_file and source:
                _warn_if_source_changed(container, source)
            return container
        if typename != "storage" or len(saved_id) != 6:
            raise req.corrupt(f"persistent id {saved_id!r:.80} is not a torch storage reference")
        storage_type, root_key, location, numel, view_metadata = saved_id[1:]
        if type(storage_type) is not storage_type_cls:
            raise req.corrupt(f"persistent id {saved_id!r:.80} names no storage type")
        dtype = storage_type.dtype
        if type(location) is bytes:
            location = location.decode("ascii")
        if type(root_key) not in (str, bytes) or type(location) is not str:
            raise req.corrupt(f"persistent id {saved_id!r:.80} has a bad key or location")
        if type(numel) is not int or not 0 <= numel * dtype.itemsize <= budget:
            raise req.corrupt(f"storage {root_key!r} claims {numel!r} elements")
        nbytes = numel * dtype.itemsize
        typed = roots.get(root_key)
        if typed is None:
            if fake:
                obj = torch.UntypedStorage(nbytes, device="meta")
            else:
                # uninitialised until filled below; slices of it cannot be resized (as the
                # storages torch makes from zip records), so views of it can never dangle
                obj = new_storage(nbytes)[0:nbytes]
                if not skip_data:
                    obj._torch_load_uninitialized = True
                obj = restore_location(obj, location)
            typed = typed_cls(wrap_storage=obj, dtype=dtype, _internal=True)
            roots[root_key] = typed
            guard.name_storage(typed, "storage", root_key)
        elif typed._data_ptr() == 0:  # torch gives each use of an empty storage its own
            device = typed._untyped_storage.device
            if device.type == "meta":
                typed = typed_cls(device=device, dtype=dtype, _internal=True)
            else:
                empty = new_storage(0, device=device)[0:0]
                typed = typed_cls(wrap_storage=empty, dtype=dtype, _internal=True)
            guard.name_storage(typed, "storage", root_key)
        if view_metadata is None:
            return typed
        if type(view_metadata) is not tuple or len(view_metadata) != 3:
            raise req.corrupt(f"storage view {view_metadata!r:.80} is malformed")
        view_key, offset, view_size = view_metadata
        if view_key not in views:
            if not (type(offset) is int and type(view_size) is int and offset >= 0):
                raise req.corrupt(f"storage view {view_metadata!r:.80} is malformed")
            isz = dtype.itemsize
            root_bytes = typed._untyped_storage.nbytes()
            if view_size < 0 or (offset + view_size) * isz > root_bytes:
                raise req.corrupt(f"storage view {view_key!r} runs past its storage {root_key!r}")
            sliced = typed._untyped_storage[offset * isz : (offset + view_size) * isz]
            views[view_key] = typed_cls(wrap_storage=sliced, dtype=dtype, _internal=True)
            guard.name_storage(views[view_key], "storage view", view_key)
        return views[view_key]

    unpickler_cls = _approved_unpickler(req, guard)
    if _unpickle(req, spans[0], "magic number pickle", unpickler_cls) != _LEGACY_MAGIC:
        raise req.corrupt("invalid magic number: not a legacy PyTorch file")
    if _unpickle(req, spans[1], "protocol pickle", unpickler_cls) != _LEGACY_PROTOCOL:
        raise req.corrupt("unsupported legacy protocol version")
    _unpickle(req, spans[2], "system info pickle", unpickler_cls)
    result = _unpickle(req, spans[3], "object pickle", unpickler_cls, persistent_load)
    keys = _unpickle(req, spans[4], "storage key pickle", unpickler_cls)
    del spans
    if type(keys) is not list:
        raise req.corrupt("the storage key list is not a list")
    if not fake and not skip_data:
        _fill_legacy_storages(req, data, raw_start, keys, roots)
    guard.validate_sparse(result)
    return result


def _fill_legacy_storages(
    req: Request, data: bytes, pos: int, keys: list[Any], roots: dict[Any, Any]
) -> None:
    """Per key: an 8-byte element count, then exactly the storage's bytes; then end of file."""
    torch = _t.torch()
    from_buffer, uint8 = torch.UntypedStorage.from_buffer, torch.uint8
    count_at = struct.Struct("<q").unpack_from
    # CPU storages are filled by one memmove from the file's bytes (kept alive by `data`);
    # the bounds are checked just before each copy
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    memmove = ctypes.memmove
    big_endian = sys.byteorder == "big"
    filled: set[Any] = set()
    size = len(data)
    for key in keys:
        typed = roots.get(key) if type(key) in (str, bytes) else None
        if typed is None:
            raise req.corrupt(f"storage key {key!r:.80} names no storage of the object pickle")
        if pos + 8 > size:
            raise req.corrupt(f"storage {key!r} is cut off: truncated file")
        (count,) = count_at(data, pos)
        pos += 8
        storage = typed._untyped_storage
        nbytes = storage.nbytes()
        itemsize = typed._dtype.itemsize
        if count < 0 or count * itemsize != nbytes:
            raise req.corrupt(
                f"storage {key!r} holds {count} elements but the pickle says "
                f"{nbytes // max(itemsize, 1)}"
            )
        if pos + nbytes > size:
            raise req.corrupt(f"storage {key!r} is cut off: truncated file")
        if nbytes:
            if storage.device.type == "cpu":
                memmove(storage.data_ptr(), base + pos, nbytes)
            else:
                storage.copy_(from_buffer(data, "native", offset=pos, count=nbytes, dtype=uint8))
            if big_endian:  # pragma: no cover - legacy files are little-endian
                storage.byteswap(typed._dtype)
        pos += nbytes
        filled.add(key)
    if pos != size:
        raise req.corrupt(f"{size - pos} bytes after the last storage: refused")
    if len(filled) != len(roots):
        missing = next(k for k in roots if k not in filled)
        raise req.corrupt(f"storage {missing!r} has no data in the file")


def _warn_if_source_changed(container: type, saved_source: Any) -> None:
    """torch.load's SourceChangeWarning for whole-module pickles (no patch file is written)."""

    warning: type[Warning] = _t.serialization().SourceChangeWarning

    try:
        current = inspect.getsource(container)
    except (OSError, TypeError):
        warnings.warn(
            f"Couldn't retrieve source code for container of type {container.__name__}. It "
            "won't be checked for correctness upon loading.",
            stacklevel=2,
        )
        return
    if saved_source != current:
        warnings.warn(
            f"source code of class '{container.__module__}.{container.__qualname__}' has "
            "changed. you can retrieve the original source code by accessing the object's "
            "source attribute.",
            warning,
            stacklevel=2,
        )


def mmap_on_legacy(f: Any) -> RuntimeError:
    """torch.load's own error for ``mmap=True`` on a legacy file."""
    f_name = "" if not isinstance(f, str) else f"{f}, "
    return RuntimeError(
        "mmap can only be used with files saved with "
        f"`torch.save({f_name}_use_new_zipfile_serialization=True), "
        "please torch.save your checkpoint with this option in order to use mmap."
    )
