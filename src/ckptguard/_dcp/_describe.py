"""``ckptguard inspect DCP_DIR``: items, shapes, dtypes, shards and byte counts, and the
non-tensor items' structure (from their scanned pickles; nothing is unpickled)."""

from __future__ import annotations

import os
from typing import Any

from ckptguard._errors import CheckpointError
from ckptguard._formats import read_buffer
from ckptguard._pickle._analysis import OPAQUE
from ckptguard._policy import Policy

from ._scan import item_label, scan_dcp
from ._shards import check_shards

_MAX_REPR = 200


def describe(path: str, policy: Policy) -> dict[str, Any]:
    """A JSON-able description of the DCP checkpoint at ``path``."""
    scanned = scan_dcp(path, policy)
    rec = scanned.record
    doc: dict[str, Any] = {
        "path": rec.path, "format": "dcp", "verdict": rec.verdict.value, "size": rec.size,
        "items": [], "shards": {}, "hint": rec.hint,
        "problems": [f.message for f in rec.findings if f.severity.value == "error"],
    }  # fmt: skip
    layout = scanned.layout
    if layout is None:
        return doc
    item_recs = {r.path: r for r in rec.items}
    with check_shards(scanned.root, layout) as shards:
        for st, _item, _chunk in layout.storages():
            doc["shards"][st.relative_path] = doc["shards"].get(st.relative_path, 0) + st.length
        for item in layout.items:
            if item.kind == "tensor":
                doc["items"].append({
                    "fqn": item.fqn, "kind": "tensor", "dtype": item.dtype,
                    "shape": list(item.size or ()), "chunks": len(item.chunks),
                    "shards": sorted({c.storage.relative_path for c in item.chunks}),
                    "bytes": item.nbytes,
                })  # fmt: skip
                continue
            assert item.storage is not None
            label = item_label(scanned.root, item.storage, item.fqn)
            r = item_recs.get(label)
            doc["items"].append({
                "fqn": item.fqn, "kind": "bytes", "shard": item.storage.relative_path,
                "offset": item.storage.offset, "bytes": item.storage.length,
                "verdict": r.verdict.value if r else None,
                "globals": [g.qualified_name for g in r.globals] if r else [],
                "value": _structure(shards.read(item.storage)),
            })  # fmt: skip
    return doc


def _structure(data: bytes) -> str:

    try:
        ex = read_buffer(data)
    except CheckpointError as exc:
        return f"<unreadable: {exc.problem}>"
    for s in ex.pickles:
        v = s.analysis.value
        if v is OPAQUE:
            names = sorted({f"{g.module}.{g.name}" for g in s.analysis.globals})
            return f"<object built by {', '.join(names) or 'the pickle'}>"
        text = repr(v)
        return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."
    return "<no pickle>"


def render(doc: dict[str, Any]) -> str:
    lines = [f"{doc['verdict'].upper()}  {doc['path']}  (dcp, {doc['size']} bytes)"]
    lines += [f"  problem: {p}" for p in doc["problems"]]
    for it in doc["items"]:
        if it["kind"] == "tensor":
            lines.append(
                f"  {it['fqn']}: tensor {it['dtype']} {it['shape']}  {it['bytes']} bytes in "
                f"{it['chunks']} chunk(s) ({', '.join(it['shards'])})"
            )
        else:
            lines.append(
                f"  {it['fqn']}: bytes item [{it['verdict']}] {it['shard']}[{it['offset']}:"
                f"{it['bytes']}] = {it['value']}"
            )
    for shard, n in sorted(doc["shards"].items()):
        lines.append(f"  shard {shard}: {n} bytes")
    if doc.get("hint"):
        lines.append(f"  next: {doc['hint']}")
    return "\n".join(lines) + "\n"


def is_dcp(path: str) -> bool:
    return os.path.isdir(path) and os.path.lexists(os.path.join(path, ".metadata"))
