"""Files described from their headers: safetensors (names, dtypes, shapes, bytes,
``__metadata__``), numpy ``.npy``/``.npz`` (each array's dtype, shape, bytes) and TorchScript
archives (code, never run: its records and, when its data pickle reads as data, its
parameters and buffers). Only headers and directories are read, never tensor data; every
reader is the scanner's validated one (a malformed file raises CorruptCheckpointError)."""

from __future__ import annotations

import mmap
import re
from typing import Any

from ckptguard._convert import NUMPY_NAMES
from ckptguard._errors import CheckpointError
from ckptguard._formats._extracted import Member
from ckptguard._formats._npy import NpyHeader, read_npy_header
from ckptguard._formats._safetensors import parse_header
from ckptguard._formats._zip import member_head, read_member, read_members
from ckptguard._pickle._tree import build_tree

from ._describer import MAX_CHILDREN, TEXT_SHOWN, Describer

_ST_DTYPE = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "I64": "int64",
    "U64": "uint64",
    "F64": "float64",
    "C64": "complex64",
    "C128": "complex128",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu",
}
# numpy's dtype names, plus the two plain dtypes convert has no torch dtype for
_NPY_NAMES = {**NUMPY_NAMES, "f16": "float128", "c32": "complex256"}
_NPY_PLAIN = re.compile(r"([<|=]?)(b1|[iu][1248]|f(?:2|4|8|16)|c(?:8|16|32))")
_NPY_HEAD = 12 + (64 << 10)  # a .npy preamble and the largest header read_npy accepts


class Described:
    """A tree and its tensor totals."""

    __slots__ = ("tensor_bytes", "tensors", "tree")

    def __init__(self, tree: dict[str, Any], tensors: int, tensor_bytes: int) -> None:
        self.tree = tree
        self.tensors = tensors
        self.tensor_bytes = tensor_bytes


def _keyed(kind: str, pairs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    items = [{"key": k, "value": v} for k, v in pairs[:MAX_CHILDREN]]
    return {"type": kind, "len": len(pairs), "items": items}


def _text(v: str) -> dict[str, Any]:
    if len(v) > TEXT_SHOWN:
        return {"type": "str", "value": v[:TEXT_SHOWN] + "...", "len": len(v)}
    return {"type": "str", "value": v}


def describe_safetensors(buf: mmap.mmap) -> Described:
    entries, meta = parse_header(buf)
    pairs: list[tuple[str, dict[str, Any]]] = []
    total = 0
    for e in entries:
        nbytes = e.end - e.begin
        total += nbytes
        node = {
            "type": "tensor",
            "dtype": _ST_DTYPE.get(e.dtype, e.dtype),
            "shape": list(e.shape),
            "bytes": nbytes,
        }
        pairs.append((e.name, node))
    if meta:
        pairs.append(("__metadata__", _keyed("dict", [(k, _text(v)) for k, v in meta.items()])))
    return Described(_keyed("dict", pairs), len(entries), total)


def npy_node(h: NpyHeader) -> dict[str, Any]:
    """A .npy array as a tree node: ``array`` with its dtype, shape and bytes (an object
    array: ``object array``, its data being a pickle)."""
    if h.has_object:
        return {"type": "object array", "dtype": "object", "shape": list(h.shape)}
    descr = h.descr
    dtype = str(descr) if isinstance(descr, str) else "structured"
    m = _NPY_PLAIN.fullmatch(dtype)
    if m is not None:
        dtype = _NPY_NAMES[m.group(2)]
    elif isinstance(descr, str):
        dtype = descr
    return {"type": "array", "dtype": dtype, "shape": list(h.shape), "bytes": h.nbytes}


def describe_npy(buf: mmap.mmap, name: str, describer: Describer) -> Described:
    h = read_npy_header(buf, name)
    node = npy_node(h)
    if not h.has_object:
        return Described(node, 1, h.nbytes)

    tree = build_tree(buf, start=h.data_offset, where=f"{name} (object array)")
    result = describer.run(tree.root)
    node["items"] = [{"key": "data", "value": describer.describe(result.root, result.types)}]
    node["len"] = 1
    return Described(node, describer.tensors, describer.tensor_bytes)


def describe_npz(buf: mmap.mmap) -> Described:
    pairs: list[tuple[str, dict[str, Any]]] = []
    total = 0
    for m in read_members(buf):
        if m.name.endswith("/"):
            continue
        h = read_npy_header(member_head(buf, m, _NPY_HEAD), m.name)
        node = npy_node(h)
        if not h.has_object:
            total += h.nbytes
        pairs.append((m.name.removesuffix(".npy"), node))
    return Described(_keyed("npz", pairs), len(pairs), total)


def describe_torchscript(buf: mmap.mmap, describer: Describer) -> Described:
    """A TorchScript archive: its code files (never run) and storage records; its data pickle
    (the module objects' state: parameters and buffers) described as data when it reads."""
    members = read_members(buf)
    prefix = members[0].name.split("/", 1)[0] + "/" if members else ""
    by_rel: dict[str, Member] = {
        m.name[len(prefix) :]: m for m in members if m.name.startswith(prefix)
    }
    code = sorted(r for r in by_rel if r.startswith("code/") and r.endswith(".py"))
    data = {r[5:]: m.size for r, m in by_rel.items() if r.startswith("data/") and len(r) > 5}
    out: dict[str, Any] = {
        "type": "torchscript",
        "what": (
            f"TorchScript: code ({len(code)} source files) that only torch.jit.load runs; "
            "inspect runs none of it"
        ),
        "code": code[:50],
        "storages": len(data),
        "storage_bytes": sum(data.values()),
    }
    pkl = by_rel.get("data.pkl")
    if pkl is None:
        return Described(out, 0, 0)

    try:
        tree = build_tree(read_member(buf, pkl), where=prefix + "data.pkl")
        describer.storage_sizes = data
        result = describer.run(tree.root)
    except CheckpointError as exc:
        out["what"] += f"; its data pickle cannot be described ({exc.problem})"
        return Described(out, 0, 0)
    out["len"] = 1
    out["items"] = [{"key": "data", "value": describer.describe(result.root, result.types)}]
    return Described(out, describer.tensors, describer.tensor_bytes)
