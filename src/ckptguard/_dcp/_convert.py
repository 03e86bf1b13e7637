"""``ckptguard convert DCP_DIR OUT.pt``: a safe counterpart of ``dcp_to_torch_save``.

The checkpoint is scanned as a unit and refused when dangerous or unreadable. Each tensor is
assembled from its chunks (each chunk loaded with :func:`ckptguard.load`, copied into place)
in a scratch file mapped as the tensor's storage, so memory holds one chunk at a time and
the tensors live in the page cache, not the heap. Each bytes item goes through ckptguard's
own converter (as the checkpoint it is) and is read back as weights-only data. The nested
structure comes from the metadata's ``planner_data`` as with ``dcp_to_torch_save``. The
result is written to a temporary file next to DST, read back with stock
``torch.load(weights_only=True, mmap=True)`` and compared tensor by tensor (bit-identical),
then renamed into place. ``--to safetensors`` converts that ``.pt`` with ckptguard's
safetensors writer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import OrderedDict
from typing import Any

from ckptguard._convert._pipeline import ConvertResult, convert_file, refuse_unsafe
from ckptguard._errors import ConvertError, CorruptCheckpointError, UsageError
from ckptguard._grammar import a_or_an
from ckptguard._load._safe_load import load
from ckptguard._policy import Policy

from ._layout import Item
from ._reader import _unpickle_metadata, _Whole
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
            sums = _write_pt(tmp_pt, sd, lazies, shards, policy)
        _verify(tmp_pt, sums, root)
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
        where = os.path.join(shards.root, st.relative_path)
        chunk = load(_Whole(shards.read(st), f"{item.fqn} chunk {c.offsets}"), policy=policy)
        if not isinstance(chunk, torch.Tensor) or chunk.dtype != dtype:
            raise CorruptCheckpointError(
                f"chunk {c.offsets} of {item.fqn!r} is not {a_or_an(str(item.dtype))} tensor",
                path=where,
            )
        if tuple(chunk.shape) != c.sizes or chunk.layout != torch.strided:
            raise CorruptCheckpointError(
                f"chunk {c.offsets} of {item.fqn!r} has shape {tuple(chunk.shape)}, the metadata "
                f"says {c.sizes}",
                path=where,
            )
        if full is None:  # one chunk covering the tensor: it is the tensor
            return chunk.detach().contiguous().clone() if not _owns(chunk) else chunk.detach()
        view = full
        for dim, (o, s) in enumerate(zip(c.offsets, c.sizes, strict=True)):
            view = view.narrow(dim, o, s)
        view.copy_(chunk)
        del chunk
    return full


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
) -> dict[str, int]:
    """Write ``sd`` as torch.save does (zip, protocol 2, records data.pkl, .format_version,
    .storage_alignment, byteorder, data/KEY), assembling each DCP tensor when its record is
    written. Returns the CRC-32 of each storage record's bytes, by key."""
    import io  # noqa: PLC0415
    import pickle  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import zlib  # noqa: PLC0415

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
    sums: dict[str, int] = {}
    writer = torch._C.PyTorchFileWriter(path)
    writer.write_record("data.pkl", data, len(data))
    writer.write_record(".format_version", b"1", 1)
    alignment = str(torch.serialization._get_storage_alignment()).encode()
    writer.write_record(".storage_alignment", alignment, len(alignment))
    order = sys.byteorder.encode()
    writer.write_record("byteorder", order, len(order))
    for key, rec in records.items():
        storage = (
            _assemble(rec.item, shards, policy).untyped_storage() if isinstance(rec, _Lazy) else rec
        )
        nbytes = storage.nbytes()
        sums[key] = zlib.crc32(_bytes_view(torch, storage)) if nbytes else 0
        writer.write_record(f"data/{key}", storage, nbytes)
        del storage
    writer.write_end_of_file()
    return sums


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


def _verify(path: str, sums: dict[str, int], root: str) -> None:
    """Stock ``torch.load(weights_only=True)`` reads the file back, and every storage it
    loads holds exactly the bytes that were assembled (CRC-32 of each record)."""
    import zlib  # noqa: PLC0415

    import torch  # noqa: PLC0415

    seen: dict[str, int] = {}
    back = torch.load(path, weights_only=True, mmap=True)

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            st = o.untyped_storage()
            seen[str(st.data_ptr())] = zlib.crc32(_bytes_view(torch, st)) if st.nbytes() else 0
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(back)
    if sorted(v for v in seen.values() if v) != sorted(v for v in sums.values() if v):
        raise CorruptCheckpointError(
            "the written file does not read back with the assembled tensor bytes",
            path=root,
            hint="nothing was written to DST; report this as a ckptguard bug",
        )
