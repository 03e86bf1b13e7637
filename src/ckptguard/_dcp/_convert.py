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
from typing import Any

from ckptguard._errors import ConvertError, CorruptCheckpointError, UsageError
from ckptguard._policy import Policy

from ._layout import Item
from ._reader import _unpickle_metadata, _Whole
from ._shards import ShardReader, check_shards


def convert_dcp(src: str, dst: str, *, to: str, force: bool, policy: Policy, fsync: bool) -> Any:
    from ckptguard._convert._pipeline import ConvertResult, refuse_unsafe  # noqa: PLC0415
    from ckptguard._dcp._scan import scan_dcp  # noqa: PLC0415

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
        sd, tensors, types = _build(root, scanned.layout, metadata, policy, work)
        tmp_pt = os.path.join(work, "out.pt")
        import torch  # noqa: PLC0415

        torch.save(sd, tmp_pt)
        _verify(tmp_pt, tensors, root)
        del sd, tensors
        if to == "safetensors":
            from ckptguard._convert import convert_file  # noqa: PLC0415

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
) -> tuple[dict[str, Any], dict[tuple[Any, ...], Any], dict[str, dict[str, str]]]:
    from torch.distributed.checkpoint._traverse import set_element  # noqa: PLC0415

    paths = _paths(metadata, layout)
    sd: dict[str, Any] = {}
    tensors: dict[tuple[Any, ...], Any] = {}
    types: dict[str, dict[str, str]] = {}
    shards: ShardReader = check_shards(root, layout)
    with shards:
        for n, item in enumerate(layout.items):
            if item.kind == "bytes":
                value, t = _convert_bytes(item, shards, policy, os.path.join(work, f"b{n}"))
                types.update({f"{item.fqn}{k}": v for k, v in t.items()})
            else:
                value = _assemble(item, shards, policy, os.path.join(work, f"t{n}.bin"))
                tensors[paths[item.fqn]] = value
            set_element(sd, paths[item.fqn], value)
    return sd, tensors, types


def _paths(metadata: Any, layout: Any) -> dict[str, tuple[Any, ...]]:
    pd = metadata.planner_data
    out: dict[str, tuple[Any, ...]] = {}
    for item in layout.items:
        p = pd.get(item.fqn) if type(pd) is dict else None
        ok = type(p) is tuple and p and all(type(k) in (str, int) for k in p)
        out[item.fqn] = tuple(p) if ok and p is not None else (item.fqn,)
    return out


def _assemble(item: Item, shards: ShardReader, policy: Policy, scratch: str) -> Any:
    """The tensor ``item`` assembled from its chunks in a mapped ``scratch`` file."""
    import torch  # noqa: PLC0415

    from ckptguard._load._safe_load import load  # noqa: PLC0415

    from ._layout import DTYPE_SIZES  # noqa: PLC0415

    dtype = getattr(torch, item.dtype or "")
    size = item.size or ()
    nbytes = max(item.numel * DTYPE_SIZES[item.dtype or ""], 1)
    with open(scratch, "wb") as f:
        f.truncate(nbytes)
    storage = torch.UntypedStorage.from_file(scratch, shared=True, nbytes=nbytes)
    full = torch.empty(0, dtype=dtype).set_(storage, 0, size, _strides(size))  # type: ignore[arg-type]
    for c in item.chunks:
        st = c.storage
        chunk = load(_Whole(shards.read(st), f"{item.fqn} chunk {c.offsets}"), policy=policy)
        if not isinstance(chunk, torch.Tensor) or chunk.dtype != dtype:
            raise CorruptCheckpointError(
                f"chunk {c.offsets} of {item.fqn!r} is not a {item.dtype} tensor",
                path=os.path.join(shards.root, st.relative_path),
            )
        if tuple(chunk.shape) != c.sizes:
            raise CorruptCheckpointError(
                f"chunk {c.offsets} of {item.fqn!r} has shape {tuple(chunk.shape)}, the metadata "
                f"says {c.sizes}",
                path=os.path.join(shards.root, st.relative_path),
            )
        view = full
        for dim, (o, s) in enumerate(zip(c.offsets, c.sizes, strict=True)):
            view = view.narrow(dim, o, s)
        view.copy_(chunk)
        del chunk
    return full.requires_grad_(item.requires_grad) if item.requires_grad else full


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

    from ckptguard._convert import convert_file  # noqa: PLC0415

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


def _verify(path: str, tensors: dict[tuple[Any, ...], Any], root: str) -> None:
    """Stock ``torch.load(weights_only=True)`` reads the file back, and every tensor, found by
    its path in the structure, holds the assembled bytes bit for bit."""
    import torch  # noqa: PLC0415

    back = torch.load(path, weights_only=True, mmap=True)
    for keys, want in tensors.items():
        got: Any = back
        try:
            for k in keys:
                got = got[k]
        except (KeyError, IndexError, TypeError):
            got = None
        if (
            not isinstance(got, torch.Tensor)
            or got.dtype != want.dtype
            or got.shape != want.shape
            or not torch.equal(got.view(torch.uint8) if got.numel() else got,
                               want.view(torch.uint8) if want.numel() else want)
        ):  # fmt: skip
            raise CorruptCheckpointError(
                f"the written file does not hold tensor {'.'.join(map(str, keys))!r} bit for bit",
                path=root,
                hint="nothing was written to DST; report this as a ckptguard bug",
            )
