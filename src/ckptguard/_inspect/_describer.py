"""The describer: the converter, showing instead of refusing, and its output as a tree.

:class:`Describer` is a :class:`~ckptguard._convert.Converter` whose hooks describe what convert
would refuse (``opaque``), show dangerous calls as such without interpreting them, and keep
colliding keys apart; :meth:`Describer.describe` then turns the converted value into the
``{"type": ..., ...}`` nodes of an :class:`~ckptguard._inspect.Inspection` tree. Tensors are
described from their rebuild arguments (dtype, shape, bytes); tensor data is never read.
"""

from __future__ import annotations

import math
from typing import Any

from ckptguard._convert import (
    MAX_KEY_VALUES,
    Converter,
    KeySeg,
    OCall,
    OGlobal,
    OOpaque,
    OSet,
    OStorage,
    Path,
    bounded_repr,
)
from ckptguard._pickle._tree import Call, Global, TList, TTuple
from ckptguard._policy import Policy
from ckptguard._verdict import Verdict

MAX_CHILDREN = 2000  # items of one container in the tree (the rest: "len" says how many)
TEXT_SHOWN = 200  # characters of a string value or key shown (the rest: "len")
MAX_DEPTH = 200

DTYPE_SIZE = {
    "bool": 1,
    "uint8": 1,
    "int8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "complex32": 4,
    "complex64": 8,
    "complex128": 16,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "quint8": 1,
    "qint8": 1,
    "qint32": 4,
    "quint4x2": 1,
    "quint2x4": 1,
}
_STORAGE_DTYPE = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "QUInt8Storage": "quint8",
    "QInt8Storage": "qint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
    "UntypedStorage": "uint8",
}
_TENSOR_REBUILDS = frozenset(
    {
        "torch._utils._rebuild_tensor",  # the v1 helper: (storage, offset, size, stride)
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_qtensor",
    }
)
_PARAMETERS = frozenset(
    {"torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"}
)
# Values shown once: a second reference to the same one (a shared sub-list, a cycle) is shown
# as {"type": "ref", "ref": path of the first}. Linear in the pickle however often it shares;
# empty ones are cheap and shown as they are.
_SHOWN_ONCE = (dict, list, tuple, OSet, OCall)

_OBJECT_ARRAY = OGlobal("numpy", "ndarray")  # marks a described object array (never emitted)
_Trie = dict[Any, Any]  # segment text -> sub-trie; the key None -> the recorded type


def _types_trie(types: dict[str, dict[str, str]]) -> _Trie:
    """The recorded types by path segment, so that the walk looks a child up by its segment
    instead of building every child's whole path text."""
    root: _Trie = {}
    for path, rec in types.items():
        node = root
        for part in path[1:].split("/") if path else ():
            node = node.setdefault(part, {})
        node[None] = rec
    return root


class Describer(Converter):
    """One description of a checkpoint's object pickle (see the module docstring)."""

    def __init__(self, storage_sizes: dict[str, int], *, policy: Policy) -> None:
        super().__init__(storage_sizes)
        self.policy = policy
        self.tensors = 0
        self.tensor_bytes = 0
        self.seen_storages: set[str] = set()
        self.shown: dict[int, Any] = {}  # id of a container shown -> its (lazy) path
        self.ref_text: dict[int, str] = {}
        self.trie: _Trie = {}
        self.call_depth = 0

    # ------------------------------------------------------------ converter hooks
    def refuse(self, path: Path, problem: str, hint: str | None = None) -> Any:
        return OOpaque(problem)

    def unrecordable(self, path: Path, g: Global, too_long: bool) -> bool:
        return True  # the type is not shown there

    def collision(self, path: Path, first: Any, second: Any, ck: Any) -> Any:
        return OOpaque(f"{bounded_repr(second, 200)} (collides with another key)")

    def dangerous_call(self, func: Global) -> Any:
        if self.policy.classify(func.module, func.name)[0] is Verdict.DANGEROUS:
            return OOpaque(f"a call of {func.qualified_name} (dangerous)")
        return None

    def call(self, node: Call, path: Path, depth: int, strict: bool) -> Any:
        self.call_depth = depth  # for ndarray: its items nest below this call
        return super().call(node, path, depth, strict)

    def ndarray(self, node: Call, path: Path, strict: bool) -> Any:
        """A numpy array; an object array (numpy pickles its items as a list) is shown with
        its items instead of as opaque."""
        out = super().ndarray(node, path, strict)
        state = node.state.items if type(node.state) is TTuple else ()
        if type(out) is not OOpaque or len(state) != 5 or type(state[4]) is not TList:
            return out
        shape, dtype = state[1], state[2]
        args = dtype.args.items if type(dtype) is Call and type(dtype.args) is TTuple else ()
        if not (
            type(shape) is TTuple
            and all(type(d) is int for d in shape.items)
            and type(dtype) is Call
            and dtype.func == Global("numpy", "dtype")
            and args
            and args[0] in ("O", "O4", "O8")
        ):
            return out
        items = self.value(state[4], (path, "items"), self.call_depth + 1, strict=False)
        return OCall(_OBJECT_ARRAY, (tuple(shape.items), items))

    # ------------------------------------------------------------ the tree
    def describe(self, root: Any, types: dict[str, dict[str, str]]) -> dict[str, Any]:
        """The tree of ``root`` (a value this describer converted), with the original types
        recorded in ``types`` (path -> record) shown as ``original_type``."""
        self.trie = _types_trie(types)
        return self.node(root, "", self.trie)

    def child(self, trie: _Trie | None, seg: Any) -> _Trie | None:
        if trie is None or len(trie) <= (None in trie):  # no recorded type below
            return None
        sub: _Trie | None = trie.get(self.paths.seg(seg))
        return sub

    def node(self, v: Any, path: Any, trie: _Trie | None, depth: int = 0) -> dict[str, Any]:
        if type(v) in _SHOWN_ONCE and (type(v) not in (dict, list, tuple) or v):
            if id(v) in self.shown:
                text = self.ref_text.get(id(v))
                if text is None:
                    text = self.paths.shown(self.shown[id(v)])
                    self.ref_text[id(v)] = text
                return {"type": "ref", "ref": text, "what": f"same as {text}"}
            self.shown[id(v)] = path
        out = self._node(v, path, trie, depth)
        rec = trie.get(None) if trie is not None else None
        if rec is not None:
            out["original_type"] = rec["type"]
        return out

    def _node(self, v: Any, path: Any, trie: _Trie | None, depth: int) -> dict[str, Any]:
        t = type(v)
        if t is str and len(v) > TEXT_SHOWN:
            return {"type": "str", "value": v[:TEXT_SHOWN] + "...", "len": len(v)}
        if v is None or t in (bool, int, str):
            return {"type": t.__name__ if v is not None else "None", "value": v}
        if t is float:
            return {"type": "float", "value": v if math.isfinite(v) else repr(v)}
        if t is complex:
            return {"type": "complex", "value": [v.real, v.imag]}
        if t is bytes:
            return {"type": "bytes", "len": len(v)}
        if depth > MAX_DEPTH:
            return {"type": "opaque", "what": "nested too deep to show"}
        if t in (dict, list, tuple) or t is OSet:
            seq = v.items if t is OSet else v
            pairs = list(v.items()) if t is dict else list(enumerate(seq))
            kind = "set" if t is OSet else t.__name__
            return self.container(kind, pairs, path, trie, depth, keyed=t is dict)
        if t is OCall:
            return self.describe_call(v, path, trie, depth)
        if t is OGlobal:
            return {"type": "global", "value": v.qualified_name}
        if t is OStorage:
            return {"type": "storage", "key": v.key, "bytes": v.nbytes}
        if t is OOpaque:
            return {"type": "opaque", "what": v.what}
        return {"type": "opaque", "what": t.__name__}

    def container(
        self,
        kind: str,
        pairs: list[tuple[Any, Any]],
        path: Any,
        trie: _Trie | None,
        depth: int,
        *,
        keyed: bool,
    ) -> dict[str, Any]:
        segs = (KeySeg(k) for k, _x in pairs) if keyed else (i for i, _x in pairs)
        items = [
            {
                "key": shown_key(k),
                "value": self.node(x, (path, seg), self.child(trie, seg), depth + 1),
            }
            for (k, x), seg in zip(pairs[:MAX_CHILDREN], segs, strict=False)
        ]
        return {"type": kind, "len": len(pairs), "items": items}

    def describe_call(self, v: OCall, path: Any, trie: _Trie | None, depth: int) -> dict[str, Any]:
        name = v.func.qualified_name
        a = v.args
        if name in ("collections.OrderedDict", "collections.Counter"):
            return self.ordered_dict(v, name.rsplit(".", 1)[1], path, trie, depth)
        if v.func is _OBJECT_ARRAY and len(a) == 2 and type(a[1]) is list:
            out = self.container("list", list(enumerate(a[1])), path, trie, depth, keyed=False)
            out.update({"type": "object array", "dtype": "object", "shape": list(a[0])})
            return out
        if name == "torch.Size":
            return {"type": "torch.Size", "value": list(a[0]) if a else []}
        if name == "torch.device":
            return {"type": "torch.device", "value": ":".join(str(x) for x in a)}
        if name in _TENSOR_REBUILDS:
            st = a[0] if a else None
            dtype = None
            if name.endswith("_v3") and len(a) > 6 and type(a[6]) is OGlobal:
                dtype = a[6].name
            elif type(st) is OStorage:
                dtype = _STORAGE_DTYPE.get(st.storage_class.name)
            return self.tensor(
                st,
                dtype,
                a[2] if len(a) > 2 else (),
                "tensor" if "qtensor" not in name else "quantized tensor",
            )
        if name in _PARAMETERS:
            inner = (
                self.node(a[0], path, None, depth + 1) if a else {"type": "opaque", "what": name}
            )
            inner["type"] = "parameter"
            return inner
        if name == "torch._utils._rebuild_sparse_tensor" and len(a) > 1:
            parts = a[1] if type(a[1]) is tuple else ()
            shape: Any = ()
            if len(parts) > 2 and type(parts[2]) is OCall and parts[2].args:
                shape = parts[2].args[0]
            values = self.node(parts[1], path, None, depth + 1) if len(parts) > 1 else {}
            self.node(parts[0], path, None, depth + 1) if parts else None
            return {
                "type": "sparse tensor",
                "dtype": values.get("dtype"),
                "shape": list(shape) if isinstance(shape, tuple) else [],
            }
        if name == "torch._tensor._rebuild_from_type_v2" and len(a) > 2:
            func = a[0]
            if type(func) is OGlobal and type(a[2]) is tuple:
                return self.describe_call(OCall(func, a[2]), path, trie, depth)
        if name == "_codecs.encode" and a and type(a[0]) is str:
            return {"type": "bytes", "len": len(a[0])}
        if name.startswith("torch.") and v.func.module == "torch" and not a:
            return {"type": "global", "value": name}
        return {"type": "object", "class": name}

    def ordered_dict(
        self, v: OCall, kind: str, path: Any, trie: _Trie | None, depth: int
    ) -> dict[str, Any]:
        """``OrderedDict()`` with its items set (SETITEMS), or the constructor form
        ``OrderedDict([[k, v], ...])`` / ``OrderedDict([(k, v), ...])`` (as lpips files hold
        it), or both: the entries in the order the dict gets them."""
        opaque = {"type": "object", "class": f"collections.{kind}"}
        pairs: list[tuple[Any, Any]] = []
        a = v.args
        if a and (kind != "OrderedDict" or len(a) > 1):
            return opaque  # Counter(iterable) counts; OrderedDict takes one mapping
        if a and type(a[0]) is dict:
            pairs = list(a[0].items())
        elif a and type(a[0]) in (list, tuple):
            for item in a[0]:
                if type(item) not in (list, tuple) or len(item) != 2:
                    return opaque
                pairs.append((item[0], item[1]))
        elif a:
            return opaque
        merged: dict[Any, Any] = {}  # first insertion fixes the place, the last value wins
        try:
            for k, x in (*pairs, *v.dictitems):
                if type(k) is tuple and self.key_size(k) > MAX_KEY_VALUES:
                    return opaque  # hashing it would walk a shared tuple chain
                merged[k] = x
        except TypeError:  # an unhashable key: the real constructor fails too
            return opaque
        out = self.container("dict", list(merged.items()), path, trie, depth, keyed=True)
        out["type"] = kind
        return out

    def tensor(self, st: Any, dtype: str | None, shape: Any, kind: str) -> dict[str, Any]:
        dims = list(shape) if isinstance(shape, tuple) else []
        numel = math.prod(dims) if all(type(d) is int for d in dims) else 0
        size = DTYPE_SIZE.get(dtype or "", 0) * numel
        self.tensors += 1
        if type(st) is OStorage and st.key not in self.seen_storages:
            self.seen_storages.add(st.key)
            self.tensor_bytes += st.nbytes
        out: dict[str, Any] = {"type": kind, "dtype": dtype, "shape": dims, "bytes": size}
        if type(st) is OStorage:
            out["storage"] = st.key
        return out


def shown_key(k: Any) -> Any:
    """A dict key as shown: plain keys as they are (long strings cut), others by a bounded
    description."""
    if type(k) is str:
        return k if len(k) <= TEXT_SHOWN else k[:TEXT_SHOWN] + "..."
    if type(k) in (int, bool) or (type(k) is float and math.isfinite(k)):
        return k
    return bounded_repr(k, TEXT_SHOWN)
