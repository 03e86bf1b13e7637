"""``restore_types``: rebuild the originals a conversion recorded, for allowed types only.

Reads ``obj["__ckptguard__"]["types"]`` (see docs/convert.md). For every entry whose type the
policy classifies SAFE or ALLOWED, the module is imported (that is what allowing means) and the
value at that path is rebuilt according to how it was converted (``as``). Deeper paths are
restored first, so containers receive restored children. Entries that are not allowed, whose
module is not installed, or that sit inside a tuple stay plain data and stay recorded; the
``__ckptguard__`` entry is removed once nothing is left in it.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any

from ckptguard._convert._values import FORMAT_KEY
from ckptguard._errors import CheckpointError
from ckptguard._grammar import a_or_an
from ckptguard._policy import Policy
from ckptguard._verdict import Verdict

_MAX_SEGMENT = 4096  # convert's key reprs in paths are at most ~1 KiB (REPR_LIMIT)
_REBUILDABLE = ("value", "state", "dict", "list", "args", "content", "global", "set", "tensor")


def _segments(path: str) -> list[str]:
    if not path:
        return []
    return [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]


def _child_key(parent: Any, seg: str) -> Any:
    if isinstance(parent, dict):
        if seg in parent:
            return seg
        if len(seg) > _MAX_SEGMENT:  # longer than any key repr convert writes in a path
            raise KeyError(seg)
        try:
            key = ast.literal_eval(seg)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            raise KeyError(seg) from None
        if key in parent:
            return key
        raise KeyError(seg)
    if isinstance(parent, (list, tuple)):
        i = int(seg)
        if not 0 <= i < len(parent):
            raise KeyError(seg)
        return i
    raise KeyError(seg)


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild(target: Any, how: str, value: Any) -> Any:
    if how == "global":
        return target
    if how == "value":
        return target(value)
    if how == "args":
        return target(*value)
    if how == "set":
        return frozenset(value)
    if how == "tensor":
        return value.numpy() if hasattr(value, "numpy") else value
    if how in ("list", "content"):
        return target(value)
    if how == "dict":
        try:
            return target(value)
        except TypeError:  # defaultdict and friends: first argument is not the items
            inst = target.__new__(target)
            inst.update(value)
            return inst
    # "state": an object rebuilt from its pickled state, the way pickle's BUILD does
    inst = target.__new__(target)
    setstate = getattr(type(inst), "__setstate__", None)  # object has none: plain __dict__
    if setstate is not None:
        setstate(inst, value)
    elif isinstance(value, dict):
        inst.__dict__.update(value)
    else:
        raise TypeError(f"cannot apply {a_or_an(type(value).__name__)} state")
    return inst


def restore(obj: Any, *, policy: Policy) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(FORMAT_KEY), dict):
        return obj
    meta = obj[FORMAT_KEY]
    types = meta.get("types")
    if not isinstance(types, dict):
        return obj
    remaining = dict(types)
    root = obj
    paths = [p for p in types if isinstance(p, str)]  # the file may hold anything here
    for path in sorted(paths, key=lambda p: (-p.count("/"), p)):
        rec = types[path]
        if not isinstance(rec, dict) or "#key" in path or rec.get("as") not in _REBUILDABLE:
            continue
        qualified, module = rec.get("type"), rec.get("module")
        if not (isinstance(qualified, str) and isinstance(module, str)) or not (
            qualified.startswith(module + ".")
        ):
            continue
        name = qualified[len(module) + 1 :]
        if name == "ndarray" and module == "numpy":
            verdict = Verdict.SAFE
        else:
            verdict, _ = policy.classify(module, name)
        if verdict not in (Verdict.SAFE, Verdict.ALLOWED):
            continue
        segs = _segments(path)
        try:
            parent: Any = None
            key: Any = None
            node: Any = root
            for seg in segs:
                parent, key = node, _child_key(node, seg)
                node = node[key]
        except (KeyError, ValueError, TypeError):
            continue
        if parent is not None and isinstance(parent, tuple):
            continue
        try:
            target = None if rec["as"] in ("set", "tensor") else _resolve(module, name)
        except (ImportError, AttributeError):
            continue  # allowed but not installed here: stays plain data
        try:
            new = _rebuild(target, rec["as"], node)
        except Exception as exc:  # the allowed class's own code failed
            raise CheckpointError(
                f"cannot restore {qualified} at {path or '/'}: {type(exc).__name__}: {exc}",
                hint="load without restore_types=True to get the plain data",
            ) from exc
        if parent is None:
            root = new
        else:
            parent[key] = new
        del remaining[path]
    if isinstance(root, dict) and root is obj:
        if remaining:
            obj[FORMAT_KEY] = {**meta, "types": remaining}
        else:
            del obj[FORMAT_KEY]
    return root


def plain_data_lines(dst: str, plain_types: dict[str, str], policy: Policy) -> list[str]:
    """What a conversion changed, said after it (CLI): the types now stored as plain data, what
    that means for code, and how to get the originals back."""
    if not plain_types:
        return []
    listed = ", ".join(f"{t} -> {how}" for t, how in plain_types.items())
    need = []
    for qualified in plain_types:
        module, _, name = qualified.rpartition(".")
        if module and policy.classify(module, name)[0] not in (Verdict.SAFE, Verdict.ALLOWED):
            need.append(qualified)
    allow = f", allow={need!r}" if need else ""
    flags = "".join(f" --allow {n}" for n in need)
    return [
        f"  types now stored as plain data: {listed}",
        "  code that compares or type-checks these values sees the plain data (an Enum member "
        "is now its value, an object a dict)",
        f"  to get the original objects back: ckptguard.load({dst!r}{allow}, "
        f"restore_types=True), or for third-party code: ckptguard run --restore-types{flags} "
        "SCRIPT.py",
    ]
