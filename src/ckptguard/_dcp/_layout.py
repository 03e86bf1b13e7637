"""The layout of a DCP checkpoint, read symbolically from its ``.metadata`` pickle.

:func:`parse_layout` turns the object graph of ``.metadata`` (built by
:func:`ckptguard._pickle._tree.build_tree`: nothing is imported or called) into plain records:
every state-dict item with its kind, dtype, shape and chunks, and where each chunk or bytes
item lies (shard file, offset, length, transform descriptors). The schema is checked strictly:
an object of the wrong class, a field of the wrong type, an unknown field, a duplicate key or
an item with no storage is a :class:`DcpError` (rule ``dcp-metadata``), never a guess.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ckptguard._errors import DcpError
from ckptguard._grammar import a_or_an
from ckptguard._pickle._tree import Call, Global, TDict, TList, TTuple
from ckptguard._scan_rules import DCP_CHUNK_TILING, DCP_MISSING_ITEM

MD = "torch.distributed.checkpoint.metadata"
FS = "torch.distributed.checkpoint.filesystem"

# torch dtype name -> element size in bytes (the dtypes DCP can write a tensor of).
DTYPE_SIZES = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex128": 16, "complex64": 8,
    "complex32": 4, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "uint16": 2,
    "uint32": 4, "uint64": 8, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1, "qint8": 1, "quint8": 1,
    "qint32": 4, "quint4x2": 1, "quint2x4": 1, "bits8": 1, "bits16": 2,
}  # fmt: skip
_LAYOUTS = frozenset({"torch.strided"})
_PATH_CLASSES = frozenset(
    {
        ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"),
        ("pathlib", "PureWindowsPath"), ("pathlib._local", "PosixPath"),
        ("pathlib._local", "WindowsPath"), ("pathlib._local", "PurePosixPath"),
        ("pathlib._local", "PureWindowsPath"),
    }
)  # fmt: skip
MAX_DIMS = 64
MAX_CHUNKS = 100_000  # per tensor (tiling is checked pairwise within a bound)


class Storage(NamedTuple):
    """Where one item's bytes are: ``length`` bytes at ``offset`` of shard ``relative_path``."""

    relative_path: str
    offset: int
    length: int
    transforms: tuple[str, ...]


class Chunk(NamedTuple):
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    storage: Storage


class Item(NamedTuple):
    """One state-dict entry: a tensor (``dtype``, ``size``, ``chunks``) or a bytes item."""

    fqn: str
    kind: str  # "tensor" or "bytes"
    dtype: str | None
    size: tuple[int, ...] | None
    chunks: tuple[Chunk, ...]
    storage: Storage | None  # bytes items only
    requires_grad: bool = False

    @property
    def numel(self) -> int:
        n = 1
        for s in self.size or ():
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_SIZES.get(self.dtype or "", 0)


class Layout(NamedTuple):
    items: tuple[Item, ...]
    version: str | None

    def storages(self) -> list[tuple[Storage, Item, Chunk | None]]:
        out: list[tuple[Storage, Item, Chunk | None]] = []
        for item in self.items:
            if item.storage is not None:
                out.append((item.storage, item, None))
            out.extend((c.storage, item, c) for c in item.chunks)
        return out


def _bad(what: str) -> DcpError:
    return DcpError(f".metadata: {what}")


def _is_global(node: Any, module: str, name: str) -> bool:
    return type(node) is Global and node.module == module and node.name == name


def _obj(node: Any, module: str, name: str, what: str) -> Any:
    """The BUILD state of ``module.name.__new__(cls)`` (NEWOBJ with no arguments); ``None``
    when the object had no BUILD."""
    if type(node) is not Call or not _is_global(node.func, module, name):
        raise _bad(f"{what} is {_describe(node)}, expected {a_or_an(f'{module}.{name}')}")
    if node.op != "NEWOBJ" or type(node.args) is not TTuple or node.args.items:
        raise _bad(f"{what}: {name} built by {node.op} with arguments, not as pickle writes it")
    if node.dictitems or node.listitems:
        raise _bad(f"{what}: items added to {a_or_an(name)}")
    return node.state if node.has_state else None


def _fields(
    state: Any, allowed: frozenset[str], required: frozenset[str], what: str
) -> dict[str, Any]:
    if state is None:
        state = TDict()
    if type(state) is not TDict:
        raise _bad(f"{what}: state is {_describe(state)}, expected a dict of fields")
    out: dict[str, Any] = {}
    for k, v in state.items:
        if type(k) is not str or k not in allowed:
            raise _bad(f"{what}: unexpected field {k!r}")
        if k in out:
            raise _bad(f"{what}: field {k!r} given twice")
        out[k] = v
    missing = required - out.keys()
    if missing:
        raise _bad(f"{what}: missing field(s) {', '.join(sorted(missing))}")
    return out


def _describe(node: Any) -> str:
    if type(node) is Call:
        f = node.func
        return f"a call of {f.qualified_name}" if type(f) is Global else "a call"
    if type(node) is Global:
        return f"the global {node.qualified_name}"
    return a_or_an(type(node).__name__)


def _int(v: Any, what: str, *, minimum: int = 0) -> int:
    if type(v) is not int or v < minimum:
        raise _bad(f"{what} is {v!r}, expected an integer >= {minimum}")
    return v


def _str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise _bad(f"{what} is {_describe(v)}, expected a string")
    return v


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise _bad(f"{what} is {v!r}, expected a bool")
    return v


def _size(node: Any, what: str) -> tuple[int, ...]:
    """A ``torch.Size`` of non-negative ints: ``torch.Size((a, b, ...))``."""
    if (
        type(node) is not Call
        or not _is_global(node.func, "torch", "Size")
        or node.op != "REDUCE"
        or type(node.args) is not TTuple
        or len(node.args.items) != 1
        or type(node.args.items[0]) not in (TTuple, TList)
        or node.has_state
        or node.dictitems
        or node.listitems
    ):
        raise _bad(f"{what} is {_describe(node)}, expected a torch.Size")
    dims = node.args.items[0].items
    if len(dims) > MAX_DIMS:
        raise _bad(f"{what} has {len(dims)} dimensions (more than {MAX_DIMS})")
    return tuple(_int(d, f"{what}[{i}]") for i, d in enumerate(dims))


def _dtype(node: Any, what: str) -> str:
    if type(node) is not Global or node.module != "torch" or node.name not in DTYPE_SIZES:
        raise _bad(f"{what} is {_describe(node)}, expected a torch dtype")
    return node.name


def _properties(node: Any, what: str) -> tuple[str, bool]:
    state = _obj(node, MD, "TensorProperties", what)
    if type(state) is not TTuple or len(state.items) != 5:
        raise _bad(f"{what}: TensorProperties state is not its 5-tuple")
    dtype, layout, requires_grad, mem, pin = state.items
    if not (
        type(layout) is Call
        and _is_global(layout.func, "torch.serialization", "_get_layout")
        and type(layout.args) is TTuple
        and len(layout.args.items) == 1
        and layout.args.items[0] in _LAYOUTS
        and not layout.has_state
    ) and not _is_global(layout, "torch", "strided"):
        raise _bad(f"{what}: layout is {_describe(layout)}, expected torch.strided")
    if not (
        type(mem) is Call
        and _is_global(mem.func, MD, "_MEM_FORMAT_ENCODING")
        and mem.op == "REDUCE"
        and type(mem.args) is TTuple
        and len(mem.args.items) == 1
        and type(mem.args.items[0]) is int
        and mem.args.items[0] in (0, 1, 2)
        and not mem.has_state
    ):
        raise _bad(f"{what}: memory format is {_describe(mem)}, expected _MEM_FORMAT_ENCODING(0-2)")
    _bool(pin, f"{what}.pin_memory")
    return _dtype(dtype, f"{what}.dtype"), _bool(requires_grad, f"{what}.requires_grad")


_INDEX_FIELDS = frozenset({"fqn", "offset", "index"})
_INFO_FIELDS = frozenset({"relative_path", "offset", "length", "transform_descriptors"})


def _index(node: Any) -> tuple[str, tuple[int, ...] | None]:
    f = _fields(
        _obj(node, MD, "MetadataIndex", "a storage_data key"),
        _INDEX_FIELDS,
        frozenset({"fqn"}),
        "MetadataIndex",
    )
    fqn = _str(f["fqn"], "MetadataIndex.fqn")
    offset = f.get("offset")
    index = f.get("index")
    if index is not None:
        _int(index, f"MetadataIndex({fqn!r}).index")
    return fqn, (None if offset is None else _size(offset, f"MetadataIndex({fqn!r}).offset"))


def _storage_info(node: Any, fqn: str) -> Storage:
    what = f"storage of {fqn!r}"
    f = _fields(
        _obj(node, FS, "_StorageInfo", what),
        _INFO_FIELDS,
        frozenset({"relative_path", "offset", "length"}),
        what,
    )
    transforms: tuple[str, ...] = ()
    td = f.get("transform_descriptors")
    if td is not None:
        if type(td) not in (TList, TTuple):
            raise _bad(f"{what}: transform_descriptors is {_describe(td)}")
        transforms = tuple(_str(t, f"{what}: transform descriptor") for t in td.items)
    return Storage(
        _str(f["relative_path"], f"{what}: relative_path"),
        _int(f["offset"], f"{what}: offset"),
        _int(f["length"], f"{what}: length", minimum=1),
        transforms,
    )


_MD_FIELDS = frozenset(
    {"state_dict_metadata", "planner_data", "storage_data", "storage_meta", "version"}
)
_TENSOR_FIELDS = frozenset({"properties", "size", "chunks"})
_CHUNK_FIELDS = frozenset({"offsets", "sizes"})
_META_FIELDS = frozenset({"checkpoint_id", "save_id", "load_id", "modules"})


def parse_layout(root: Any) -> Layout:
    """The items of a DCP checkpoint from the tree of its ``.metadata`` (see module doc)."""
    md = _fields(
        _obj(root, MD, "Metadata", "the pickle"),
        _MD_FIELDS,
        frozenset({"state_dict_metadata", "storage_data"}),
        "Metadata",
    )
    version = md.get("version")
    if version is not None:
        _str(version, "Metadata.version")
    _storage_meta(md.get("storage_meta"))
    storage = _storage_map(md["storage_data"])
    sdm = md["state_dict_metadata"]
    if type(sdm) is not TDict:
        raise _bad(f"state_dict_metadata is {_describe(sdm)}, expected a dict")
    items: list[Item] = []
    seen: set[str] = set()
    used: set[tuple[str, tuple[int, ...] | None]] = set()
    for key, value in sdm.items:
        fqn = _str(key, "a state_dict_metadata key")
        if fqn in seen:
            raise _bad(f"item {fqn!r} listed twice")
        seen.add(fqn)
        items.append(_item(fqn, value, storage, used))
    _planner_data(md.get("planner_data"), len(items))
    extra = storage.keys() - used
    if extra:
        fqn, off = sorted(extra, key=repr)[0]
        raise _bad(f"storage_data has an entry for {fqn!r} (offset {off}) that no item uses")
    return Layout(tuple(items), version)


def _planner_data(node: Any, n_items: int) -> None:
    """The default planners' mapping ``fqn -> path in the state dict`` (or nothing).

    ``dcp_to_torch_save`` and the default load planner rebuild the nested state dict from it
    with ``set_element``, which grows a list up to any integer index it meets: an index is
    bounded by the number of items (every list element is an item of its own)."""
    if node is None:
        return
    if type(node) is not TDict:
        raise _bad(f"planner_data is {_describe(node)}, expected the default planners' mapping")
    for key, path in node.items:
        _str(key, "a planner_data key")
        if type(path) not in (TTuple, TList) or not path.items or len(path.items) > MAX_DIMS:
            raise _bad(f"planner_data[{key!r}] is {_describe(path)}, expected a key path")
        for part in path.items:
            if type(part) is int:
                if not 0 <= part < max(n_items, 1):
                    raise _bad(
                        f"planner_data[{key!r}] has list index {part}: the checkpoint has "
                        f"{n_items} items"
                    )
            elif type(part) is not str:
                raise _bad(f"planner_data[{key!r}] holds {_describe(part)}, expected str/int")


def _storage_meta(node: Any) -> None:
    if node is None:
        return
    f = _fields(
        _obj(node, MD, "StorageMeta", "Metadata.storage_meta"), _META_FIELDS, frozenset(),
        "StorageMeta",
    )  # fmt: skip
    cid = f.get("checkpoint_id")
    if (
        cid is not None
        and type(cid) is not str
        and not (
            type(cid) is Call
            and type(cid.func) is Global
            and (cid.func.module, cid.func.name) in _PATH_CLASSES
            and cid.op == "REDUCE"
            and type(cid.args) is TTuple
            and all(type(a) is str for a in cid.args.items)
            and not cid.has_state
            and not cid.dictitems
            and not cid.listitems
        )
    ):
        raise _bad(f"StorageMeta.checkpoint_id is {_describe(cid)}, expected a str or path")
    for k in ("save_id", "load_id"):
        if f.get(k) is not None:
            _str(f[k], f"StorageMeta.{k}")
    modules = f.get("modules")
    if modules is not None:
        if type(modules) is not TList:
            raise _bad("StorageMeta.modules is not a list")
        for m in modules.items:
            _str(m, "StorageMeta.modules item")


def _storage_map(node: Any) -> dict[tuple[str, tuple[int, ...] | None], Storage]:
    if type(node) is not TDict:
        raise _bad(f"storage_data is {_describe(node)}, expected a dict")
    out: dict[tuple[str, tuple[int, ...] | None], Storage] = {}
    for k, v in node.items:
        key = _index(k)
        if key in out:
            raise _bad(f"storage_data lists {key[0]!r} (offset {key[1]}) twice")
        out[key] = _storage_info(v, key[0])
    return out


def _item(
    fqn: str,
    node: Any,
    storage: dict[tuple[str, tuple[int, ...] | None], Storage],
    used: set[tuple[str, tuple[int, ...] | None]],
) -> Item:
    if type(node) is Call and _is_global(node.func, MD, "BytesStorageMetadata"):
        _fields(_obj(node, MD, "BytesStorageMetadata", fqn), frozenset(), frozenset(), fqn)
        st = storage.get((fqn, None))
        if st is None:
            raise DcpError(
                f".metadata: bytes item {fqn!r} has no storage entry", rule=DCP_MISSING_ITEM
            )
        used.add((fqn, None))
        return Item(fqn, "bytes", None, None, (), st)
    what = f"item {fqn!r}"
    f = _fields(_obj(node, MD, "TensorStorageMetadata", what), _TENSOR_FIELDS, _TENSOR_FIELDS, what)
    dtype, requires_grad = _properties(f["properties"], f"{what}.properties")
    size = _size(f["size"], f"{what}.size")
    chunks_node = f["chunks"]
    if type(chunks_node) is not TList:
        raise _bad(f"{what}.chunks is {_describe(chunks_node)}, expected a list")
    if len(chunks_node.items) > MAX_CHUNKS:
        raise _bad(f"{what} has {len(chunks_node.items)} chunks (more than {MAX_CHUNKS})")
    chunks = []
    for i, c in enumerate(chunks_node.items):
        cw = f"{what}.chunks[{i}]"
        cf = _fields(_obj(c, MD, "ChunkStorageMetadata", cw), _CHUNK_FIELDS, _CHUNK_FIELDS, cw)
        offsets = _size(cf["offsets"], f"{cw}.offsets")
        sizes = _size(cf["sizes"], f"{cw}.sizes")
        st = storage.get((fqn, offsets))
        if st is None:
            raise DcpError(
                f".metadata: chunk {offsets} of tensor {fqn!r} has no storage entry",
                rule=DCP_MISSING_ITEM,
            )
        if (fqn, offsets) in used:
            raise _bad(f"{cw}: two chunks of {fqn!r} at the same offsets {offsets}")
        used.add((fqn, offsets))
        chunks.append(Chunk(offsets, sizes, st))
    item = Item(fqn, "tensor", dtype, size, tuple(chunks), None, requires_grad)
    check_tiling(item)
    return item


def check_tiling(item: Item) -> None:
    """The chunks of a tensor lie inside it, do not overlap, and cover it exactly."""
    size = item.size or ()
    total = 0
    boxes = []
    for c in item.chunks:
        if len(c.offsets) != len(size) or len(c.sizes) != len(size):
            raise DcpError(
                f".metadata: a chunk of {item.fqn!r} has {len(c.offsets)}/{len(c.sizes)} "
                f"dimensions, the tensor {len(size)}",
                rule=DCP_CHUNK_TILING,
            )
        vol = 1
        for o, s, full in zip(c.offsets, c.sizes, size, strict=True):
            if o + s > full:
                raise DcpError(
                    f".metadata: chunk at {c.offsets} of {item.fqn!r} (sizes {c.sizes}) runs "
                    f"outside the tensor's size {size}",
                    rule=DCP_CHUNK_TILING,
                )
            vol *= s
        if vol == 0 and item.numel:
            raise DcpError(
                f".metadata: empty chunk at {c.offsets} of {item.fqn!r}", rule=DCP_CHUNK_TILING
            )
        total += vol
        boxes.append(c)
    if total != item.numel or (not item.chunks and item.numel):
        raise DcpError(
            f".metadata: the chunks of {item.fqn!r} hold {total} elements, the tensor "
            f"{item.numel}: they do not tile it",
            rule=DCP_CHUNK_TILING,
        )
    if len(boxes) > 1 and item.numel:
        _no_overlap(item, boxes)


def _no_overlap(item: Item, boxes: list[Chunk]) -> None:
    # Disjoint boxes whose volumes sum to the tensor's cover it exactly. Sorting on the first
    # dimension bounds the pairs compared in the common (row-sharded) case.
    order = sorted(boxes, key=lambda c: c.offsets[0] if c.offsets else 0)
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            if a.offsets and b.offsets[0] >= a.offsets[0] + a.sizes[0]:
                break
            if all(
                ao < bo + bs and bo < ao + as_
                for ao, as_, bo, bs in zip(a.offsets, a.sizes, b.offsets, b.sizes, strict=True)
            ):
                raise DcpError(
                    f".metadata: chunks at {a.offsets} and {b.offsets} of {item.fqn!r} overlap",
                    rule=DCP_CHUNK_TILING,
                )
