"""Hostile DCP (torch.distributed.checkpoint) checkpoints, built from a benign one (tests only).

Every sample is a function ``(root, marker) -> None`` that turns the benign checkpoint
directory ``root`` (written by :func:`write_benign`) into a hostile one. Payload pickles are
built opcode by opcode (:mod:`tests.pickleasm`) and only ever create ``marker``. The metadata
rewrites unpickle only the benign ``.metadata`` this module wrote itself.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.factories import data_pkl_zip
from tests.pickleasm import call, program, sglobal, ustr

SHARD = "__0_0.distcp"


def write_benign(root: Path) -> None:
    """A small DCP checkpoint: two tensors, and bytes items (an int, a list)."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    sd = {"w": torch.arange(12.0).reshape(4, 3), "step": 7, "cfg": [1, "a"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(sd, checkpoint_id=str(root), no_dist=True)


def payload_pickle(marker: Path) -> bytes:
    """``open(marker, 'w')``: creates the marker file when unpickled."""
    return program(call(sglobal("builtins", "open"), ustr(str(marker)), ustr("w")), protocol=4)


def _meta(root: Path) -> Any:
    with open(root / ".metadata", "rb") as f:
        return pickle.load(f)


def _dump(root: Path, md: Any) -> None:
    with open(root / ".metadata", "wb") as f:
        pickle.dump(md, f)


def _info(md: Any, fqn: str) -> Any:
    return next(v for k, v in md.storage_data.items() if k.fqn == fqn)


def _splice(root: Path, fqn: str, blob: bytes) -> None:
    """Replace item ``fqn``'s bytes in its shard, shifting every later item (consistent)."""
    md = _meta(root)
    target = _info(md, fqn)
    shard_name = target.relative_path
    shard = (root / shard_name).read_bytes()
    items = sorted(
        (i for i in md.storage_data.values() if i.relative_path == shard_name),
        key=lambda i: i.offset,
    )
    out, pos = bytearray(), 0
    for info in items:
        data = blob if info is target else shard[info.offset : info.offset + info.length]
        info.offset, info.length = pos, len(data)
        out += data
        pos += len(data)
    (root / shard_name).write_bytes(bytes(out))
    _dump(root, md)


# ---- payloads -----------------------------------------------------------------------------


def metadata_payload(root: Path, marker: Path) -> None:
    (root / ".metadata").write_bytes(payload_pickle(marker))


def bytes_item_payload(root: Path, marker: Path) -> None:
    bytes_item_payload_in(root, marker, "step")


def bytes_item_payload_in(root: Path, marker: Path, fqn: str) -> None:
    """The bytes item ``fqn`` becomes a torch.save'd payload (offsets kept consistent)."""
    _splice(root, fqn, data_pkl_zip(payload_pickle(marker)))


def traversal_payload(root: Path, marker: Path) -> None:
    """The bytes item 'step' points at ``../evil.distcp`` outside the checkpoint."""
    evil = root.parent / "evil.distcp"
    evil.write_bytes(data_pkl_zip(payload_pickle(marker)))
    md = _meta(root)
    info = _info(md, "step")
    info.relative_path, info.offset, info.length = "../evil.distcp", 0, evil.stat().st_size
    _dump(root, md)


def absolute_path_payload(root: Path, marker: Path) -> None:
    evil = root.parent / "evil_abs.distcp"
    evil.write_bytes(data_pkl_zip(payload_pickle(marker)))
    md = _meta(root)
    info = _info(md, "step")
    info.relative_path, info.offset, info.length = str(evil), 0, evil.stat().st_size
    _dump(root, md)


def symlink_payload(root: Path, marker: Path) -> None:
    """The shard is a link to a file outside the directory holding a payload item."""
    bytes_item_payload(root, marker)
    outside = root.parent / "outside.distcp"
    os.replace(root / SHARD, outside)
    os.symlink(outside, root / SHARD)


# ---- structure (no payload: refused as inconsistent) ---------------------------------------


def _set(fqn: str, **fields: Any) -> Callable[[Path, Path], None]:
    def mutate(root: Path, marker: Path) -> None:
        md = _meta(root)
        info = _info(md, fqn)
        for k, v in fields.items():
            setattr(info, k, v(info) if callable(v) else v)
        _dump(root, md)

    return mutate


def overlap(root: Path, marker: Path) -> None:
    md = _meta(root)
    a, b = _info(md, "step"), _info(md, "cfg")
    b.offset = a.offset
    _dump(root, md)


def missing_shard(root: Path, marker: Path) -> None:
    os.remove(root / SHARD)


def shard_gap(root: Path, marker: Path) -> None:
    with open(root / SHARD, "ab") as f:
        f.write(data_pkl_zip(payload_pickle(marker)))  # hidden bytes no item owns


def chunk_not_tiling(root: Path, marker: Path) -> None:
    md = _meta(root)
    import torch

    md.state_dict_metadata["w"].size = torch.Size([8, 3])
    _dump(root, md)


def wrong_type_storage(root: Path, marker: Path) -> None:
    md = _meta(root)
    md.storage_data = list(md.storage_data.items())
    _dump(root, md)


def wrong_type_item(root: Path, marker: Path) -> None:
    md = _meta(root)
    md.state_dict_metadata["w"] = "not metadata"
    _dump(root, md)


def planner_data_huge_index(root: Path, marker: Path) -> None:
    """dcp_to_torch_save would grow a list to this index (memory exhaustion)."""
    md = _meta(root)
    md.planner_data["cfg"] = ("cfg", 10**12)
    _dump(root, md)


def planner_data_object(root: Path, marker: Path) -> None:
    md = _meta(root)
    md.planner_data = ["not", "a", "mapping"]
    _dump(root, md)


def bytes_item_plain_pickle(root: Path, marker: Path) -> None:
    """A bytes item that is a plain pickle: torch.load unpickles it (magic number check)."""
    _splice(root, "step", payload_pickle(marker))


def metadata_trailing_bytes(root: Path, marker: Path) -> None:
    with open(root / ".metadata", "ab") as f:
        f.write(payload_pickle(marker))


def metadata_symlink(root: Path, marker: Path) -> None:
    outside = root.parent / "outside.metadata"
    outside.write_bytes(payload_pickle(marker))
    os.remove(root / ".metadata")
    os.symlink(outside, root / ".metadata")


SAMPLES: dict[str, Callable[[Path, Path], None]] = {
    "planner_data_huge_index": planner_data_huge_index,
    "planner_data_object": planner_data_object,
    "bytes_item_plain_pickle": bytes_item_plain_pickle,
    "metadata_trailing_bytes": metadata_trailing_bytes,
    "metadata_symlink": metadata_symlink,
    "metadata_payload": metadata_payload,
    "bytes_item_payload": bytes_item_payload,
    "traversal_payload": traversal_payload,
    "absolute_path_payload": absolute_path_payload,
    "symlink_payload": symlink_payload,
    "overlap": overlap,
    "out_of_bounds": _set("step", length=lambda i: i.length + 10**6),
    "negative_offset": _set("step", offset=-1),
    "huge_offset": _set("step", offset=2**63),
    "huge_length": _set("cfg", length=2**64),
    "zero_length": _set("cfg", length=0),
    "transform_descriptor": _set("step", transform_descriptors=["zstd"]),
    "wrong_type_offset": _set("step", offset="0"),
    "wrong_type_path": _set("step", relative_path=b"__0_0.distcp"),
    "wrong_type_storage": wrong_type_storage,
    "wrong_type_item": wrong_type_item,
    "missing_shard": missing_shard,
    "shard_gap": shard_gap,
    "chunk_not_tiling": chunk_not_tiling,
    "dotdot_path": _set("step", relative_path=".."),
}

# Samples whose payload runs under stock torch.distributed.checkpoint.load (liveness).
LIVE = ("metadata_payload", "bytes_item_payload", "traversal_payload", "absolute_path_payload",
        "symlink_payload", "bytes_item_plain_pickle", "metadata_symlink")  # fmt: skip
