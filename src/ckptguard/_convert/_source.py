"""Open a source checkpoint for conversion/inspection: its object pickle and its storages.

The archive structure is validated by the scanner's strict zip reader; the pickle is parsed by
the tree builder. Storage records are located (offset, size) but never read here.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from ckptguard._convert._torchscript import state_dict_tree
from ckptguard._errors import CorruptCheckpointError
from ckptguard._formats._common import LEGACY_MAGIC_NUMBER as MAGIC_NUMBER
from ckptguard._formats._common import corrupt
from ckptguard._formats._detect import _PICKLE_START
from ckptguard._formats._torchzip import is_torchscript_name, storage_element_size
from ckptguard._formats._zip import read_member, read_members
from ckptguard._pickle import DEFAULT_LIMITS
from ckptguard._pickle._tree import Call, PersId, TDict, TList, Tree, TSet, TTuple, build_tree
from ckptguard._record import Record as _Frozen
from ckptguard._record import set_field

# Plain slotted classes, not dataclasses: start-up time (see ckptguard._record).


class Record(_Frozen):
    """Where a storage's bytes are in the source file."""

    __slots__ = ("crc", "csize", "method", "offset", "size")
    offset: int
    csize: int  # bytes on disk
    size: int  # bytes once decompressed
    method: int  # 0 stored, 8 deflated (zip only)
    crc: int | None  # None for legacy storages (computed while copying)

    def __init__(self, offset: int, csize: int, size: int, method: int, crc: int | None) -> None:
        set_field(self, "offset", offset)
        set_field(self, "csize", csize)
        set_field(self, "size", size)
        set_field(self, "method", method)
        set_field(self, "crc", crc)


class Source:
    __slots__ = ("format", "path", "records", "size", "tree")

    def __init__(
        self, path: str, fmt: str, tree: Tree, records: dict[str, Record] | None = None
    ) -> None:
        self.path = path
        self.format = fmt  # "pytorch-zip", "pytorch-legacy", "pickle"
        self.tree = tree
        self.records: dict[str, Record] = {} if records is None else records
        self.size = 0

    @property
    def storage_sizes(self) -> dict[str, int]:
        return {k: r.size for k, r in self.records.items()}


def open_source(path: str) -> Source:
    """Parse ``path``; raises CorruptCheckpointError for anything convert cannot read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise corrupt("the file is empty (0 bytes)", fmt="empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            src = _open(path, mm)
    src.size = size
    return src


def _open(path: str, mm: mmap.mmap) -> Source:
    head = mm[:4]
    if head.startswith(b"PK\x03\x04"):
        return _open_zip(path, mm)
    if head[:1] and head[0] in _PICKLE_START:
        first = build_tree(mm, where="pickle", limits=DEFAULT_LIMITS)
        if first.root == MAGIC_NUMBER and type(first.root) is int:
            return _open_legacy(path, mm, first)
        if first.end != len(mm):
            raise CorruptCheckpointError(
                "several pickles in a row: not a format convert knows",
                hint=f"ckptguard scan {path}",
                format="pickle",
            )
        return Source(path, "pickle", first)
    raise CorruptCheckpointError(
        "not a PyTorch zip/legacy checkpoint or a pickle: nothing for convert to rewrite",
        hint=f"ckptguard scan {path}",
    )


def _open_zip(path: str, mm: mmap.mmap) -> Source:
    members = read_members(mm)
    if not members or "/" not in members[0].name:
        raise corrupt("zip archive that is not a PyTorch checkpoint", fmt="zip")
    prefix = members[0].name.split("/", 1)[0] + "/"
    by_rel = {m.name[len(prefix) :]: m for m in members if m.name.startswith(prefix)}
    if len(by_rel) != len(members):
        raise corrupt("zip members outside the archive directory", fmt="zip")
    if any(is_torchscript_name(r) for r in by_rel):  # as the scan and torch.load decide
        return Source(path, "torchscript", state_dict_tree(mm, by_rel, prefix), _records(by_rel))
    pkl = by_rel.get("data.pkl")
    if pkl is None:
        raise corrupt(f"zip archive without {prefix}data.pkl", fmt="zip")
    tree = build_tree(read_member(mm, pkl), where=prefix + "data.pkl")
    return Source(path, "pytorch-zip", tree, _records(by_rel))


def _records(by_rel: dict[str, Any]) -> dict[str, Record]:
    return {
        rel[5:]: Record(m.data_offset, m.compressed_size, m.size, m.method, m.crc)
        for rel, m in by_rel.items()
        if rel.startswith("data/") and len(rel) > 5
    }


def _open_legacy(path: str, mm: mmap.mmap, first: Tree) -> Source:
    pos = first.end
    trees = [first]
    for label in ("protocol version", "system info", "object", "storage keys"):
        t = build_tree(mm, start=pos, where=f"legacy {label} pickle")
        trees.append(t)
        pos = t.end
    keys_node = trees[4].root
    if type(keys_node) is not TList or not all(type(k) is str for k in keys_node.items):
        raise corrupt("legacy torch file: the storage-key list is not a list of strings")
    elsizes = _legacy_element_sizes(trees[3].root)
    records: dict[str, Record] = {}
    size = len(mm)
    for key in keys_node.items:
        elsize = elsizes.get(key)
        if elsize is None or pos + 8 > size:
            raise corrupt(f"legacy torch file: storage {key!r} is unknown or cut off")
        count = int.from_bytes(mm[pos : pos + 8], "little", signed=True)
        nbytes = count * elsize
        if count < 0 or pos + 8 + nbytes > size:
            raise corrupt(f"legacy torch file: storage {key!r} is cut off (truncated file)")
        records[key] = Record(pos + 8, nbytes, nbytes, 0, None)
        pos += 8 + nbytes
    if pos != size:
        raise corrupt(f"legacy torch file: {size - pos} bytes after the last storage")
    return Source(path, "pytorch-legacy", trees[3], records)


def _legacy_element_sizes(root: Any) -> dict[str, int]:
    """Storage key -> element size, from every persistent id in the object pickle."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen or node is None or isinstance(node, (int, float, str, bytes)):
            continue
        seen.add(id(node))
        if type(node) is PersId:
            pid = node.pid.items if type(node.pid) is TTuple else ()
            if len(pid) >= 5 and pid[0] == "storage" and type(pid[2]) is str:
                cls = pid[1]
                el = storage_element_size(getattr(cls, "name", None))
                if el is not None:
                    out[pid[2]] = el
            continue
        todo.extend(_children(node))
    return out


def _children(node: Any) -> list[Any]:
    t = type(node)
    if t in (TList, TSet):
        return list(node.items)
    if t is TTuple:
        return list(node.items)
    if t is TDict:
        return [x for kv in node.items for x in kv]
    if t is Call:
        out = [node.func, node.args, node.kwargs, node.state, *node.listitems]
        out.extend(x for kv in node.dictitems for x in kv)
        return out
    return []
