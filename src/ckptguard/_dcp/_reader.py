"""The reading half of ``SafeFileSystemReader`` (:mod:`._load`) and of the guarded
``FileSystemReader`` (:mod:`._guard`): a ``torch.distributed.checkpoint`` storage reader that
unpickles nothing ckptguard did not approve.

Before anything is unpickled the whole checkpoint is scanned (:func:`scan_dcp`) and refused
unless ``safe``. Then:

* ``read_metadata`` unpickles exactly the scanned ``.metadata`` bytes with a restricted C
  unpickler admitting only the globals that scan approved, and checks the result against
  the layout the scan resolved symbolically (types, items, every storage entry);
* ``set_up_storage_reader`` checks the metadata it is given (on other ranks: the
  coordinator's broadcast) against this process's own scan;
* ``read_data`` locates every request through the scanned layout (never through the
  metadata's ``storage_data``), reads the shard bytes from descriptors opened without
  following links, loads tensor chunks with :func:`ckptguard.load` and hands bytes items to the
  planner's ``load_bytes`` with ``torch.load`` routed through :func:`ckptguard.load` (the
  default planners call ``torch.load(..., weights_only=False)`` there) by the ``routed``
  block its caller hands over (``ckptguard.patched``: this module is imported by the patch,
  so it does not import it).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ckptguard._errors import CheckpointError, CorruptCheckpointError, LoadWarning
from ckptguard._formats import read_buffer
from ckptguard._grammar import a_or_an
from ckptguard._load._engine import build_unpickler
from ckptguard._load._refusal import refusal
from ckptguard._load._safe_load import _approved, load_range
from ckptguard._policy import Policy
from ckptguard._results import FileRecord
from ckptguard._verdict import FileVerdict

from ._layout import Layout, Storage
from ._scan import PATH_AS_PURE, Scanned, scan_dcp
from ._shards import ShardReader, check_shards

_STATE = "_ckptguard_dcp"


def refuse(record: FileRecord) -> CheckpointError:
    """The error for a DCP unit that is not ``safe``: the unit's own, or its worst item's."""
    own = record.findings or any(
        g.verdict.value in ("unknown", "dangerous") for g in record.globals
    )
    if record.verdict is FileVerdict.ERROR and not record.findings:
        for item in record.items:
            if item.verdict is FileVerdict.ERROR:
                return refusal(item)
    if not own:
        for item in record.items:
            if item.verdict is record.verdict:
                return refusal(item)
    return refusal(record)


def scanned_for(reader: Any, policy: Policy) -> Scanned:
    """The checkpoint behind ``reader`` scanned under ``policy`` (once per reader and policy);
    raises unless it is ``safe``."""
    state = getattr(reader, _STATE, None)
    path = os.fspath(reader.path)
    if state is not None and state[0] == (path, policy):
        return state[1]  # type: ignore[no-any-return]
    scanned = scan_dcp(path, policy)
    if scanned.record.verdict is not FileVerdict.SAFE or scanned.layout is None:
        raise refuse(scanned.record)
    setattr(reader, _STATE, ((path, policy), scanned))
    return scanned


def read_metadata(reader: Any, policy: Policy, kwargs: dict[str, Any]) -> Any:
    from torch.distributed.checkpoint.metadata import StorageMeta  # noqa: PLC0415

    if kwargs.get("rank") is not None:
        raise CorruptCheckpointError(
            "per-rank metadata files (__RANK.metadata) are not supported by ckptguard",
            path=os.fspath(reader.path),
            hint="save with a global .metadata (dcp.save's default)",
        )
    scanned = scanned_for(reader, policy)
    metadata = _unpickle_metadata(scanned, policy)
    if getattr(metadata, "storage_meta", None) is None:
        metadata.storage_meta = StorageMeta()
    metadata.storage_meta.load_id = reader.load_id
    return metadata


def _unpickle_metadata(scanned: Scanned, policy: Policy) -> Any:

    data = scanned.metadata
    assert data is not None and scanned.layout is not None
    path = os.path.join(scanned.root, ".metadata")
    approved = _approved(read_buffer(data, name=path), path)
    for raw, target in list(approved.items()):  # concrete paths load as pure ones
        if target in PATH_AS_PURE:
            approved[raw] = PATH_AS_PURE[target]
    unpickler = build_unpickler(approved, path=path, overrides=())
    stream = io.BytesIO(data)
    try:
        metadata = unpickler(stream).load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CorruptCheckpointError(
            f"it could not be unpickled: {type(exc).__name__}: {exc}", path=path
        ) from exc
    if stream.tell() != len(data):
        raise CorruptCheckpointError("the pickle did not end where the scan said", path=path)
    verify_metadata(metadata, scanned.layout, path)
    return metadata


def verify_metadata(metadata: Any, layout: Layout, path: str) -> None:
    """The unpickled metadata says exactly what the symbolic layout said."""
    from torch.distributed.checkpoint.filesystem import _StorageInfo  # noqa: PLC0415
    from torch.distributed.checkpoint.metadata import (  # noqa: PLC0415
        BytesStorageMetadata,
        Metadata,
        MetadataIndex,
        TensorStorageMetadata,
    )

    def bad(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"the unpickled metadata differs from the scanned layout: {what}", path=path
        )

    if type(metadata) is not Metadata:
        raise bad(f"{a_or_an(type(metadata).__name__)}, not a Metadata")
    sdm = metadata.state_dict_metadata
    if type(sdm) is not dict or list(sdm) != [i.fqn for i in layout.items]:
        raise bad("its items")
    expected: dict[tuple[str, tuple[int, ...] | None], Storage] = {}
    for item in layout.items:
        md = sdm[item.fqn]
        if item.kind == "bytes":
            if type(md) is not BytesStorageMetadata:
                raise bad(f"item {item.fqn!r}")
            assert item.storage is not None
            expected[(item.fqn, None)] = item.storage
            continue
        if type(md) is not TensorStorageMetadata or tuple(md.size) != item.size:
            raise bad(f"item {item.fqn!r}")
        if str(md.properties.dtype) != f"torch.{item.dtype}" or len(md.chunks) != len(item.chunks):
            raise bad(f"item {item.fqn!r}")
        for c, lc in zip(md.chunks, item.chunks, strict=True):
            if tuple(c.offsets) != lc.offsets or tuple(c.sizes) != lc.sizes:
                raise bad(f"a chunk of {item.fqn!r}")
            expected[(item.fqn, lc.offsets)] = lc.storage
    sd = metadata.storage_data
    if type(sd) is not dict or len(sd) != len(expected):
        raise bad("storage_data")
    for k, v in sd.items():
        if type(k) is not MetadataIndex or type(v) is not _StorageInfo:
            raise bad("a storage_data entry")
        key = (k.fqn, None if k.offset is None else tuple(k.offset))
        want = expected.get(key)
        got = (v.relative_path, v.offset, v.length, tuple(v.transform_descriptors or ()))
        if want is None or tuple(want) != got:
            raise bad(f"the storage of {k.fqn!r}")


def check_storage_data(reader: Any, policy: Policy, metadata: Any) -> None:
    scanned = scanned_for(reader, policy)
    assert scanned.layout is not None
    verify_metadata(metadata, scanned.layout, os.path.join(scanned.root, ".metadata"))


def read_data(
    reader: Any,
    policy: Policy,
    plan: Any,
    planner: Any,
    routed: Callable[..., AbstractContextManager[None]],
) -> Any:
    """Read ``plan``'s items through the scanned layout (see the module doc); ``routed(policy=)``
    is a block in which ``torch.load`` goes through ckptguard (``ckptguard.patched``)."""
    from torch.distributed._shard._utils import narrow_tensor_by_index  # noqa: PLC0415
    from torch.distributed.checkpoint.planner import LoadItemType  # noqa: PLC0415
    from torch.futures import Future  # noqa: PLC0415

    scanned = scanned_for(reader, policy)
    assert scanned.layout is not None
    where: dict[tuple[str, tuple[int, ...] | None], Storage] = {}
    for item in scanned.layout.items:
        if item.storage is not None:
            where[(item.fqn, None)] = item.storage
        for c in item.chunks:
            where[(item.fqn, c.offsets)] = c.storage
    shards: ShardReader = check_shards(scanned.root, scanned.layout)
    with shards:
        for req in plan.items:
            idx = req.storage_index
            key = (idx.fqn, None if idx.offset is None else tuple(idx.offset))
            st = where.get(key)
            if st is None:
                raise CorruptCheckpointError(
                    f"the load plan asks for {idx.fqn!r} at {key[1]}, which the checkpoint does "
                    "not hold",
                    path=scanned.root,
                )
            label = f"{os.path.join(scanned.root, st.relative_path)}[{st.offset}:{st.length}]"
            if req.type == LoadItemType.BYTE_IO:
                data = shards.read(st)
                # the planner unpickles it with torch.load(..., weights_only=False): route
                # that through ckptguard.load with this reader's policy
                with routed(policy=policy), warnings.catch_warnings():
                    warnings.simplefilter("ignore", LoadWarning)
                    planner.load_bytes(req, _Named(data, f"{label} ({idx.fqn})"))
                continue
            # scanned and loaded by ranged reads of the checked range: the chunk's storage
            # record is read straight into its storage (no in-memory copy of the item)
            tensor = load_range(
                shards.fds[st.relative_path], st.offset, st.length, f"{label} ({idx.fqn})",
                policy, map_location="cpu",
            )  # fmt: skip
            tensor = narrow_tensor_by_index(tensor, req.storage_offsets, req.lengths)
            target = planner.resolve_tensor(req).detach()
            if target.size() != tensor.size():
                raise CorruptCheckpointError(
                    f"{idx.fqn!r}: the stored chunk has size {tuple(tensor.size())}, the "
                    f"target {tuple(target.size())}",
                    path=label,
                )
            target.copy_(tensor)
            planner.commit_tensor(req, target)
    fut: Future[None] = Future()
    fut.set_result(None)
    return fut


class _Named(io.BytesIO):
    """An in-memory item that names where it came from (for ckptguard's messages)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


class _Whole:
    """The bytes of one item for :func:`ckptguard.load`: ``read()`` hands over the very bytes
    object (no copy, as ``io.BytesIO.read`` would make)."""

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self.name = name

    def read(self, *_: Any) -> bytes:
        data, self._data = self._data, b""
        return data
