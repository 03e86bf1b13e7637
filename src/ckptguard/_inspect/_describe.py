"""``inspect``: a checkpoint's structure and metadata, without reading tensor data or executing.

The object pickle is parsed into a tree and interpreted by the converter in lenient mode (what
convert would refuse is shown as ``opaque`` instead). Tensors are described from their rebuild
arguments (dtype, shape, bytes); tensor data is never read. ``inspect_dir`` lists the
checkpoints of a directory with step/epoch/metrics, newest first (see docs/convert.md).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ckptguard._convert._plain import Converter, KeySeg, Paths, bounded_repr
from ckptguard._convert._values import FORMAT_KEY, OCall, OGlobal, OOpaque, OSet, OStorage
from ckptguard._errors import CheckpointError
from ckptguard._gc import gc_paused
from ckptguard._policy import Policy
from ckptguard._verdict import Verdict

_STEP_KEYS = ("global_step", "step", "num_updates", "iteration", "iter", "steps", "update")
_EPOCH_KEYS = ("epoch", "epochs", "current_epoch")
_NESTED = (
    "metrics",
    "trainer_state",
    "train_state",
    "state",
    "extra_state",
    "meta",
    "metadata",
    "loops",
    "progress",
)
_METRIC = re.compile(
    r"(loss|acc|accuracy|score|metric|f1|bleu|ppl|perplexity|auc|wer|cer|error|mae|mse|rmse|"
    r"precision|recall|map|iou|dice)",
    re.IGNORECASE,
)
_LOWER_IS_BETTER = re.compile(r"(loss|error|err|wer|cer|ppl|perplexity|mae|mse|rmse)", re.I)
_MAX_CHILDREN = 2000
_DTYPE_SIZE = {
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


@dataclass
class Inspection:
    """What ``inspect`` found in one file (``to_json()`` is the ``--json`` document)."""

    path: str
    format: str
    size: int | None
    verdict: str
    mtime: float | None = None
    tree: dict[str, Any] | None = None
    step: int | None = None
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tensors: int = 0
    tensor_bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "verdict": self.verdict,
            "step": self.step,
            "epoch": self.epoch,
            "metrics": self.metrics,
            "tensors": self.tensors,
            "tensor_bytes": self.tensor_bytes,
            "error": self.error,
            "tree": self.tree,
        }


# Values the describer shows once: a second reference to the same one (a shared sub-list, a
# cycle) is shown as {"type": "ref", "ref": path of the first}. Linear in the pickle however
# often it shares; empty ones are cheap and shown as they are.
_SHOWN_ONCE = (dict, list, tuple, OSet, OCall)


_TEXT_SHOWN = 200  # characters of a string value or key shown (the rest: "len")

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


class _Describer:
    def __init__(self, types: dict[str, dict[str, str]], paths: Paths) -> None:
        self.trie = _types_trie(types)
        self.paths = paths
        self.tensors = 0
        self.tensor_bytes = 0
        self.seen_storages: set[str] = set()
        self.shown: dict[int, Any] = {}  # id of a container shown -> its (lazy) path
        self.ref_text: dict[int, str] = {}

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
        if t is str and len(v) > _TEXT_SHOWN:
            return {"type": "str", "value": v[:_TEXT_SHOWN] + "...", "len": len(v)}
        if v is None or t in (bool, int, str):
            return {"type": t.__name__ if v is not None else "None", "value": v}
        if t is float:
            return {"type": "float", "value": v if math.isfinite(v) else repr(v)}
        if t is complex:
            return {"type": "complex", "value": [v.real, v.imag]}
        if t is bytes:
            return {"type": "bytes", "len": len(v)}
        if depth > 200:
            return {"type": "opaque", "what": "nested too deep to show"}
        if t in (dict, list, tuple) or t is OSet:
            seq = v.items if t is OSet else v
            pairs = list(v.items()) if t is dict else list(enumerate(seq))
            kind = "set" if t is OSet else t.__name__
            segs = (KeySeg(k) for k, _x in pairs) if t is dict else (i for i, _x in pairs)
            items = [
                {
                    "key": _key(k),
                    "value": self.node(x, (path, seg), self.child(trie, seg), depth + 1),
                }
                for (k, x), seg in zip(pairs[:_MAX_CHILDREN], segs, strict=False)
            ]
            return {"type": kind, "len": len(pairs), "items": items}
        if t is OCall:
            return self.call(v, path, trie, depth)
        if t is OGlobal:
            return {"type": "global", "value": v.qualified_name}
        if t is OStorage:
            return {"type": "storage", "key": v.key, "bytes": v.nbytes}
        if t is OOpaque:
            return {"type": "opaque", "what": v.what}
        return {"type": "opaque", "what": t.__name__}

    def call(self, v: OCall, path: Any, trie: _Trie | None, depth: int) -> dict[str, Any]:
        name = v.func.qualified_name
        a = v.args
        if name in ("collections.OrderedDict", "collections.Counter"):
            d = self._node(dict(v.dictitems), path, trie, depth)
            d["type"] = name.rsplit(".", 1)[1]
            return d
        if name == "torch.Size":
            return {"type": "torch.Size", "value": list(a[0]) if a else []}
        if name == "torch.device":
            return {"type": "torch.device", "value": ":".join(str(x) for x in a)}
        if name in (
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor_v3",
            "torch._utils._rebuild_qtensor",
        ):
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
        if name in (
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
        ):
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
                return self.call(OCall(func, a[2]), path, trie, depth)
        if name == "_codecs.encode" and a and type(a[0]) is str:
            return {"type": "bytes", "len": len(a[0])}
        if name.startswith("torch.") and v.func.module == "torch" and not a:
            return {"type": "global", "value": name}
        return {"type": "object", "class": name}

    def tensor(self, st: Any, dtype: str | None, shape: Any, kind: str) -> dict[str, Any]:
        dims = [d for d in shape] if isinstance(shape, tuple) else []
        numel = math.prod(dims) if all(type(d) is int for d in dims) else 0
        size = _DTYPE_SIZE.get(dtype or "", 0) * numel
        self.tensors += 1
        if type(st) is OStorage and st.key not in self.seen_storages:
            self.seen_storages.add(st.key)
            self.tensor_bytes += st.nbytes
        out: dict[str, Any] = {"type": kind, "dtype": dtype, "shape": dims, "bytes": size}
        if type(st) is OStorage:
            out["storage"] = st.key
        return out


def _key(k: Any) -> Any:
    """A dict key as shown: plain keys as they are (long strings cut), others by a bounded
    description."""
    if type(k) is str:
        return k if len(k) <= _TEXT_SHOWN else k[:_TEXT_SHOWN] + "..."
    if type(k) in (int, bool) or (type(k) is float and math.isfinite(k)):
        return k
    return bounded_repr(k, _TEXT_SHOWN)


def _metadata(root: Any) -> tuple[int | None, int | None, dict[str, float]]:
    step = epoch = None
    metrics: dict[str, float] = {}
    scopes: list[dict[Any, Any]] = []
    if isinstance(root, dict):
        scopes.append(root)
        scopes.extend(root[k] for k in _NESTED if isinstance(root.get(k), dict))
    for scope in scopes:
        for k, v in scope.items():
            if not isinstance(k, str) or isinstance(v, bool):
                continue
            if type(v) is int and step is None and k in _STEP_KEYS:
                step = v
            elif type(v) is int and epoch is None and k in _EPOCH_KEYS:
                epoch = v
            elif type(v) in (int, float) and _METRIC.search(k) and k not in metrics:
                metrics[k] = float(v)
    return step, epoch, metrics


def inspect_file(path: str | os.PathLike[str], *, policy: Policy) -> Inspection:
    """Describe one checkpoint. Problems with the file are returned (``error``), not raised."""
    with gc_paused():  # the tree of a pickle-heavy file: millions of objects, all kept
        return _inspect_file(path, policy)


def _inspect_file(path: str | os.PathLike[str], policy: Policy) -> Inspection:
    from ckptguard._convert._source import open_source  # noqa: PLC0415
    from ckptguard._scan import scan_file  # noqa: PLC0415

    spath = os.fspath(path)
    report = scan_file(spath, policy)
    try:
        mtime: float | None = os.stat(spath).st_mtime
    except OSError:
        mtime = None
    ins = Inspection(spath, report.format, report.size, str(report.verdict), mtime=mtime)
    if report.verdict.value == "error":
        ins.error = next((f.message for f in report.findings), "cannot read the file")
        return ins
    if report.format not in ("pytorch-zip", "pytorch-legacy", "pickle"):
        ins.error = f"inspect shows pickled checkpoints; this is a {report.format} file"
        return ins
    try:
        src = open_source(spath)
        conv = Converter(
            src.storage_sizes,
            lenient=True,
            is_dangerous=lambda m, n: policy.classify(m, n)[0] is Verdict.DANGEROUS,
        )
        result = conv.run(src.tree.root)
    except CheckpointError as exc:
        ins.error = exc.problem
        ins.verdict = "error"
        return ins
    types = dict(result.types)
    root = result.root
    if isinstance(root, dict) and isinstance(root.get(FORMAT_KEY), dict):
        recorded = root[FORMAT_KEY].get("types")
        if isinstance(recorded, dict):
            types.update({k: v for k, v in recorded.items() if isinstance(v, dict)})
    d = _Describer(types, conv.paths)
    ins.tree = d.node(root, "", d.trie)
    ins.tensors, ins.tensor_bytes = d.tensors, d.tensor_bytes
    ins.step, ins.epoch, ins.metrics = _metadata(root)
    return ins


def primary_metric(rows: list[Inspection]) -> str | None:
    """The metric most rows have (validation metrics preferred)."""
    counts: dict[str, int] = {}
    for r in rows:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda k: (counts[k], k.startswith("val"), "loss" in k, k))


def _newest(r: Inspection) -> tuple[float, float, float]:
    return (
        -(r.step if r.step is not None else -math.inf),
        -(r.epoch if r.epoch is not None else -math.inf),
        -(r.mtime or 0.0),
    )


def sort_rows(rows: list[Inspection], *, by: str = "newest") -> tuple[list[Inspection], str | None]:
    """Sort ``rows`` newest first (step, then epoch, then mtime; unknown last), or ``by="best"``
    on the primary metric (lower is better for loss/error-like names). Returns the rows and the
    primary metric."""
    metric = primary_metric(rows)
    rows = sorted(rows, key=_newest)
    if by == "best" and metric is not None:
        sign = 1.0 if _LOWER_IS_BETTER.search(metric) else -1.0
        rows.sort(key=lambda r: (metric not in r.metrics, sign * r.metrics.get(metric, 0.0)))
    return rows, metric


def best_row(rows: list[Inspection], metric: str | None) -> Inspection | None:
    if metric is None:
        return None
    have = [r for r in rows if metric in r.metrics]
    if not have:
        return None
    sign = 1.0 if _LOWER_IS_BETTER.search(metric) else -1.0
    return min(have, key=lambda r: sign * r.metrics[metric])


def inspect_dir(
    path: str | os.PathLike[str], *, policy: Policy, by: str = "newest"
) -> tuple[list[Inspection], str | None]:
    from ckptguard._scan import collect_targets  # noqa: PLC0415

    targets, _skipped = collect_targets([path])
    rows = [inspect_file(t, policy=policy) for t in targets]
    for r in rows:
        r.tree = None  # the table does not show trees
    return sort_rows(rows, by=by)
