"""``ckptguard convert DCP_DIR OUT.pt``: a safe counterpart of ``dcp_to_torch_save``.

The checkpoint is scanned as a unit and refused when dangerous or unreadable. The output is
streamed one tensor at a time: a tensor stored as one chunk holding exactly its bytes (what
``dcp.save`` writes) has its chunk archive scanned and its pickle loaded onto the meta device
(no tensor byte read, everything checked against the metadata), then its storage record is
copied from the shard by the kernel with the CRC its archive carries; any other tensor is
assembled in memory from its chunks (peak memory: the largest such tensor). Each bytes item
goes through ckptguard's own converter (as the checkpoint it is) and is read back as
weights-only data. The nested structure comes from the metadata's ``planner_data`` as with
``dcp_to_torch_save``. The result is written to a temporary file next to DST, verified
(:func:`_verify`), then renamed into place. ``--to safetensors`` converts that ``.pt`` with
ckptguard's safetensors writer.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import sys
import tempfile
from collections import OrderedDict
from typing import Any

from ckptguard._convert._pipeline import ConvertResult, convert_file, refuse_unsafe
from ckptguard._convert._zipwrite import ZipWriter
from ckptguard._errors import ConvertError, CorruptCheckpointError, UsageError
from ckptguard._grammar import a_or_an
from ckptguard._load._safe_load import load_range, load_range_with
from ckptguard._policy import Policy, default_policy
from ckptguard._scan import scan_file
from ckptguard._verdict import FileVerdict

from ._layout import Item
from ._reader import _unpickle_metadata
from ._scan import scan_dcp
from ._shards import ShardReader, check_shards


def convert_dcp(
    src: str, dst: str, *, to: str, force: bool, policy: Policy, fsync: bool
) -> ConvertResult:
    root = src if os.path.isdir(src) else os.path.dirname(src) or "."
    if os.path.exists(dst) and not force:
        raise UsageError(
            f"{dst} already exists",
            hint=f"pass --force to overwrite it: ckptguard convert {src} {dst} --force",
        )
    if os.path.abspath(dst).startswith(os.path.abspath(root) + os.sep):
        raise UsageError(f"{dst} lies inside the checkpoint {root}: write it elsewhere")
    scanned = scan_dcp(root, policy)
    refuse_unsafe(scanned.record)
    if scanned.layout is None:  # pragma: no cover - a safe/review verdict has a layout
        raise CorruptCheckpointError("no layout", path=root)
    dst_dir = os.path.dirname(os.path.abspath(dst))
    work = tempfile.mkdtemp(prefix=".ckptguard-dcp-", dir=dst_dir)
    try:
        # items with unknown globals (review) are converted as data, never loaded: only the
        # metadata (whose scan passed, or the layout would be None) is unpickled
        metadata = _unpickle_metadata(scanned, policy)
        sd, lazies, types = _build(root, scanned.layout, metadata, policy, work)
        tmp_pt = os.path.join(work, "out.pt")
        with check_shards(root, scanned.layout) as shards:
            expect = _write_pt(tmp_pt, sd, lazies, shards, policy)
        _verify(tmp_pt, expect, root)
        del sd, lazies
        if to == "safetensors":
            tmp_st = os.path.join(work, "out.safetensors")
            convert_file(tmp_pt, tmp_st, to="safetensors", policy=policy, fsync=fsync)
            final = tmp_st
        else:
            final = tmp_pt
        if fsync:
            with open(final, "rb") as f:
                os.fsync(f.fileno())
        os.replace(final, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ConvertResult(
        src=src, dst=dst, source_format="dcp", to=to,
        storages_copied=sum(1 for i in scanned.layout.items if i.kind == "tensor"),
        storages_new=0, bytes_written=os.path.getsize(dst), types=types,
    )  # fmt: skip


def _build(
    root: str, layout: Any, metadata: Any, policy: Policy, work: str
) -> tuple[dict[str, Any], list[_Lazy], dict[str, dict[str, str]]]:
    from torch.distributed.checkpoint._traverse import set_element  # noqa: PLC0415

    paths = _paths(metadata, layout)
    sd: dict[str, Any] = {}
    lazies: list[_Lazy] = []
    types: dict[str, dict[str, str]] = {}
    shards: ShardReader = check_shards(root, layout)
    with shards:
        for n, item in enumerate(layout.items):
            if item.kind == "bytes":
                value, t = _convert_bytes(item, shards, policy, os.path.join(work, f"b{n}"))
                types.update({f"{item.fqn}{k}": v for k, v in t.items()})
            else:
                value = _Lazy(item, paths[item.fqn])
                lazies.append(value)
            set_element(sd, paths[item.fqn], value)
    return sd, lazies, types


def _paths(metadata: Any, layout: Any) -> dict[str, tuple[Any, ...]]:
    pd = metadata.planner_data
    out: dict[str, tuple[Any, ...]] = {}
    for item in layout.items:
        p = pd.get(item.fqn) if type(pd) is dict else None
        ok = type(p) is tuple and p and all(type(k) in (str, int) for k in p)
        out[item.fqn] = tuple(p) if ok and p is not None else (item.fqn,)
    return out


def _assemble(item: Item, shards: ShardReader, policy: Policy) -> Any:
    """The tensor ``item`` assembled in memory from its chunks (one chunk loaded at a time)."""
    import torch  # noqa: PLC0415

    dtype = getattr(torch, item.dtype or "")
    size = item.size or ()
    single = len(item.chunks) == 1 and item.chunks[0].sizes == size
    full = None if single else torch.empty(size, dtype=dtype)
    for c in item.chunks:
        st = c.storage
        where = _where(shards, st, item)
        chunk = load_range(shards.fds[st.relative_path], st.offset, st.length, where, policy)
        _check_chunk(torch, chunk, item, c, where)
        if full is None:  # one chunk covering the tensor: it is the tensor
            return chunk.detach().contiguous().clone() if not _owns(chunk) else chunk.detach()
        view = full
        for dim, (o, s) in enumerate(zip(c.offsets, c.sizes, strict=True)):
            view = view.narrow(dim, o, s)
        view.copy_(chunk)
        del chunk
    return full


def _where(shards: ShardReader, st: Any, item: Item) -> str:
    return f"{os.path.join(shards.root, st.relative_path)}[{st.offset}:{st.length}] ({item.fqn})"


def _check_chunk(torch: Any, chunk: Any, item: Item, c: Any, where: str) -> None:
    offsets, sizes = c.offsets, c.sizes
    if not isinstance(chunk, torch.Tensor) or chunk.dtype != getattr(torch, item.dtype or ""):
        raise CorruptCheckpointError(
            f"chunk {offsets} of {item.fqn!r} is not {a_or_an(str(item.dtype))} tensor", path=where
        )
    if tuple(chunk.shape) != sizes or chunk.layout != torch.strided:
        raise CorruptCheckpointError(
            f"chunk {offsets} of {item.fqn!r} has shape {tuple(chunk.shape)}, the metadata "
            f"says {sizes}",
            path=where,
        )


def _direct(item: Item, shards: ShardReader, policy: Policy) -> tuple[int, int, int, int] | None:
    """Where the bytes of ``item`` lie, ready to copy as they are: ``(fd, offset, crc, n)``,
    when it is one chunk whose ``torch.save`` archive holds exactly the tensor's bytes in one
    stored record in this machine's byte order; else None (it is assembled in memory).

    The chunk's archive is scanned and its pickle loaded by ckptguard's restricted loader
    (onto the meta device: no tensor byte is read) by ranged reads of its checked range; the
    record's offset, size and CRC are those its strict zip reader validated."""

    import torch  # noqa: PLC0415

    if len(item.chunks) != 1 or item.chunks[0].sizes != (item.size or ()):
        return None
    c = item.chunks[0]
    st = c.storage
    fd = shards.fds[st.relative_path]
    where = _where(shards, st, item)
    meta, ex = load_range_with(fd, st.offset, st.length, where, policy, map_location="meta")
    _check_chunk(torch, meta, item, c, where)
    prefix = ex.details.get("archive", "") + "/"
    data = [m for m in ex.records if m.name.startswith(prefix + "data/")]
    order = [m for m in ex.records if m.name == prefix + "byteorder"]
    n = meta.numel() * meta.element_size()
    if (
        len(data) != 1
        or data[0].method != 0
        or data[0].size != n
        or data[0].compressed_size != n
        or not meta.is_contiguous()
        or meta.storage_offset() != 0
        or meta.untyped_storage().nbytes() != n
    ):
        return None
    if order:  # the archive says its byte order: it must be this machine's
        m = order[0]
        if m.method != 0 or m.size > 16:
            return None
        if os.pread(fd, m.size, st.offset + m.data_offset) != sys.byteorder.encode():
            return None
    else:  # no byteorder record: read as torch's default load byte order (little unless set)
        default = torch.serialization.get_default_load_endianness()
        if sys.byteorder != "little" or default == torch.serialization.LoadEndianness.BIG:
            return None
    m = data[0]
    if m.data_offset + n > st.length:  # pragma: no cover - the zip reader checked it
        raise CorruptCheckpointError(f"record {m.name} runs past its item", path=where)
    return fd, st.offset + m.data_offset, m.crc, n


def _owns(t: Any) -> bool:
    """``t`` is contiguous and spans its whole storage from offset 0 (written as it is)."""
    return bool(
        t.is_contiguous()
        and t.storage_offset() == 0
        and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    )


class _Lazy:
    """A tensor item in the structure being pickled: its data is assembled and written after
    the pickle, one tensor at a time."""

    def __init__(self, item: Item, path: tuple[Any, ...]) -> None:
        self.item = item
        self.path = path
        self.key = ""

    def __reduce_ex__(self, protocol: Any) -> Any:
        import torch  # noqa: PLC0415

        item = self.item
        size = item.size or ()
        return (
            torch._utils._rebuild_tensor_v2,
            (_LazyStorage(self), 0, tuple(size), _strides(size), item.requires_grad,
             OrderedDict()),
        )  # fmt: skip


class _LazyStorage:
    def __init__(self, lazy: _Lazy) -> None:
        self.lazy = lazy


def _write_pt(
    path: str, sd: Any, lazies: list[_Lazy], shards: ShardReader, policy: Policy
) -> list[_Sig]:
    """Write ``sd`` as torch.save does (zip, protocol 2, records data.pkl, .format_version,
    .storage_alignment, byteorder, data/KEY, version), one tensor at a time: a tensor stored
    as one chunk holding exactly its bytes is copied from the shard by the kernel
    (``copy_file_range``) with the CRC-32 its chunk's archive carries; any other is assembled
    in memory from its chunks. Returns what each storage record holds (see :func:`_verify`)."""

    import torch  # noqa: PLC0415
    from torch.serialization import location_tag  # noqa: PLC0415

    type_names = torch.storage._dtype_to_storage_type_map()
    records: dict[str, Any] = {}  # key -> a _Lazy, or a real storage
    lazy_keys: dict[int, str] = {}
    storage_keys: dict[int, str] = {}

    def new_key() -> str:
        return str(len(records))

    def persistent_id(obj: Any) -> Any:
        if isinstance(obj, _LazyStorage):
            lazy = obj.lazy
            lazy.key = lazy_keys.setdefault(id(lazy), new_key())
            records[lazy.key] = lazy
            dtype = getattr(torch, lazy.item.dtype or "")
            return ("storage", getattr(torch, type_names[dtype]), lazy.key, "cpu",
                    max(lazy.item.numel, 0))  # fmt: skip
        if isinstance(obj, torch.storage.TypedStorage):
            storage = obj._untyped_storage
            key = storage_keys.setdefault(storage._cdata, new_key())
            records[key] = storage
            type_name = obj._pickle_storage_type()  # type: ignore[no-untyped-call]
            numel = obj.size()  # type: ignore[no-untyped-call]
            return ("storage", getattr(torch, type_name), key, location_tag(storage), numel)
        if isinstance(obj, torch.UntypedStorage):  # as torch.save writes it
            key = storage_keys.setdefault(obj._cdata, new_key())
            records[key] = obj
            storage_type = torch.serialization.normalize_storage_type(type(obj))  # type: ignore[no-untyped-call]
            return ("storage", storage_type, key, location_tag(obj), obj.nbytes())
        return None

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return persistent_id(obj)

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(sd)
    data = buf.getvalue()
    expect: list[_Sig] = []
    alignment = str(torch.serialization._get_storage_alignment()).encode()
    small = {".format_version": b"1", ".storage_alignment": alignment,
             "byteorder": sys.byteorder.encode()}  # fmt: skip
    with open(path, "wb") as out:
        zw = ZipWriter(out)
        zw.add_bytes("archive/data.pkl", data)
        for rel, content in small.items():
            zw.add_bytes(f"archive/{rel}", content)
        for key, rec in records.items():
            name = f"archive/data/{key}"
            if isinstance(rec, _Lazy):
                direct = _direct(rec.item, shards, policy)
                if direct is not None:  # the chunk's record, copied by the kernel
                    fd, off, crc, n = direct
                    zw.add_copy(name, fd, off, method=0, crc=crc, csize=n, size=n)
                    expect.append(_sig_fd(fd, off, n))
                    continue
                storage = _assemble(rec.item, shards, policy).untyped_storage()
            else:
                storage = rec
            view = _bytes_view(torch, storage) if storage.nbytes() else memoryview(b"")
            zw.add_bytes(name, view)
            expect.append(_sig(view))
            del storage, view
        zw.add_bytes("archive/version", b"3\n")
        zw.close()
    return expect


# What each storage record holds, for the read-back check: its size, first and last 4 KiB.
_Sig = tuple[int, bytes, bytes]
_SAMPLE = 4096


def _sig(view: memoryview) -> _Sig:
    n = view.nbytes
    return n, bytes(view[:_SAMPLE]), bytes(view[max(0, n - _SAMPLE) :])


def _sig_fd(fd: int, offset: int, n: int) -> _Sig:
    head = os.pread(fd, min(n, _SAMPLE), offset)
    at = max(0, n - _SAMPLE)
    tail = os.pread(fd, n - at, offset + at)
    if len(head) != min(n, _SAMPLE) or len(tail) != n - at:
        raise CorruptCheckpointError("a shard was truncated while converting", path=str(fd))
    return n, head, tail


def _bytes_view(torch: Any, storage: Any) -> memoryview:
    t = torch.empty(0, dtype=torch.uint8).set_(storage)
    return memoryview(t.numpy())


def _strides(size: tuple[int, ...]) -> tuple[int, ...]:
    out, acc = [], 1
    for s in reversed(size):
        out.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(out))


def _convert_bytes(
    item: Item, shards: ShardReader, policy: Policy, prefix: str
) -> tuple[Any, dict[str, dict[str, str]]]:
    """One bytes item through ckptguard's own converter, read back as weights-only data."""
    import torch  # noqa: PLC0415

    assert item.storage is not None
    src, out = f"{prefix}.pt", f"{prefix}.conv.pt"
    with open(src, "wb") as f:
        f.write(shards.read(item.storage))
    try:
        res = convert_file(src, out, policy=policy)
    except ConvertError as exc:
        raise ConvertError(f"bytes item {item.fqn!r}: {exc.problem}", hint=exc.hint) from None
    value = torch.load(out, weights_only=True)
    with contextlib.suppress(OSError):
        os.remove(src)
        os.remove(out)
    return value, {k.removeprefix(os.path.basename(src)): v for k, v in res.types.items()}


def _verify(path: str, expect: list[_Sig], root: str) -> None:
    """The written file is a strict, safe zip archive for ckptguard's scanner; stock
    ``torch.load(weights_only=True, mmap=True)`` reads it back; and its storages are exactly
    the records written: every size, and the first and last 4 KiB of each, equal to the
    source's bytes. Not re-read: the middle of the records the kernel copied (as the non-DCP
    convert does); their CRC-32 is the one the chunk's archive carried, validated by ckptguard's
    zip reader against its local header."""
    import torch  # noqa: PLC0415

    def fail(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"the written file did not verify ({what}); nothing was written to DST",
            path=root,
            hint="report this as a ckptguard bug; the source is unchanged",
        )

    report = scan_file(path, default_policy())
    if report.verdict is not FileVerdict.SAFE:
        raise fail(f"its scan says {report.verdict.value}")
    seen: dict[int, _Sig] = {}
    back = torch.load(path, weights_only=True, mmap=True)

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            st = o.untyped_storage()
            if st.nbytes():
                seen[st.data_ptr()] = _sig(_bytes_view(torch, st))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(back)
    if sorted(seen.values()) != sorted(e for e in expect if e[0]):
        raise fail("its storages do not read back with the source's tensor bytes")
