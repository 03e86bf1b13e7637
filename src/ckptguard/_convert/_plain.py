"""Interpretation: a pickle tree -> plain data that stock weights-only loading rebuilds.

Rules (first match wins), applied without importing or calling anything:

* constants stay; ``TList``/``TTuple``/``TDict`` become list/tuple/dict (memo sharing kept);
  sets become sets (frozensets too, recorded);
* a call of a global in torch's weights-only table (tensor rebuilds, ``OrderedDict``,
  ``torch.Size``, dtypes, ...) is kept as is; its arguments must then be expressible without
  any conversion (else the file is refused: a rewritten argument would change the tensor);
* persistent ids must be torch storage references; the storage records are copied later;
* numpy arrays (``multiarray._reconstruct`` + BUILD state, ``numeric._frombuffer``) become new
  tensors of the same dtype; numpy scalars (``multiarray.scalar``) Python numbers; numpy dtypes
  their name;
* omegaconf ``DictConfig``/``ListConfig`` become dict/list of their content;
* any other object becomes plain data from its pickled state: BUILD state -> dict (slots
  merged), SETITEMS -> dict, APPENDS -> list, a call with one argument (an Enum member) -> that
  argument, with several -> their list; a global used as a value -> its dotted name.

Every such change is recorded as ``types[path] = {"type", "module", "as"}`` (see
docs/convert.md). Anything that cannot be expressed raises :class:`ConvertError`.
"""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

from ckptguard._convert._values import (
    FORMAT_KEY,
    OCall,
    OGlobal,
    OOpaque,
    OSet,
    OStorage,
    weights_only_globals,
)
from ckptguard._errors import ConvertError
from ckptguard._formats._torchzip import storage_element_size
from ckptguard._grammar import a_or_an
from ckptguard._pickle._tree import Call, Global, PersId, Py2Str, TDict, TList, TSet, TTuple

MAX_DEPTH = 150

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")
# numpy dtype code (kind + itemsize) -> (torch dtype name, struct format for scalars)
_NUMPY_DTYPES = {
    "b1": ("bool", "?"),
    "i1": ("int8", "b"),
    "i2": ("int16", "h"),
    "i4": ("int32", "i"),
    "i8": ("int64", "q"),
    "u1": ("uint8", "B"),
    "u2": ("uint16", "H"),
    "u4": ("uint32", "I"),
    "u8": ("uint64", "Q"),
    "f2": ("float16", "e"),
    "f4": ("float32", "f"),
    "f8": ("float64", "d"),
    "c8": ("complex64", "ff"),
    "c16": ("complex128", "dd"),
}
# numpy dtype code -> numpy's name of that dtype (the same as torch's for every code above)
NUMPY_NAMES = {code: name for code, (name, _fmt) in _NUMPY_DTYPES.items()}
_NUMPY_CHARS = {
    "?": "b1",
    "b": "i1",
    "B": "u1",
    "h": "i2",
    "H": "u2",
    "i": "i4",
    "I": "u4",
    "l": "i8",
    "L": "u8",
    "q": "i8",
    "Q": "u8",
    "e": "f2",
    "f": "f4",
    "d": "f8",
    "F": "c8",
    "D": "c16",
}
_BUILDABLE = frozenset({"collections.OrderedDict", "torch.nn.parameter.Parameter", "torch.Tensor"})
_UNTYPED = OGlobal("torch.storage", "UntypedStorage")
_V3 = OGlobal("torch._utils", "_rebuild_tensor_v3")
_ODICT = OGlobal("collections", "OrderedDict")


class Result:
    __slots__ = ("notes", "root", "storages", "types")

    def __init__(self, root: Any) -> None:
        self.root = root
        self.types: dict[str, dict[str, str]] = {}
        self.storages: dict[str, OStorage] = {}  # key -> storage (old and new)
        self.notes: list[str] = []


# Values that convert keeps as they are (see Converter.value): no path, memo or check needed.
# int is not here: a huge one is refused.
_PLAIN = frozenset({type(None), bool, str, float, bytes})


REPR_LIMIT = 1024  # characters of a key's description in a path or a message
# The most values a dict key or set element may expand to (shared tuples nest: each level can
# double it). Hashing it, as the loader does, walks all of them.
MAX_KEY_VALUES = 100_000
_DESCRIBE_DEPTH = 50  # nesting shown in a description (deeper: "...")


def _describe_items(items: Any, budget: list[int], out: list[str], depth: int) -> None:
    """The comma-separated descriptions of ``items``, while the budget lasts."""
    for i, x in enumerate(items):
        if budget[0] <= 0:
            break
        if i:
            out.append(", ")
            budget[0] -= 2
        _describe(x, budget, out, depth + 1)


def _describe(v: Any, budget: list[int], out: list[str], depth: int = 0) -> None:
    """Append a description of ``v`` to ``out`` while ``budget[0]`` (characters) lasts."""
    if budget[0] <= 0:
        return
    t = type(v)
    if depth > _DESCRIBE_DEPTH:
        out.append("...")
        budget[0] -= 3
        return
    if t in (tuple, list, TTuple, TList):
        items = v.items if t in (TTuple, TList) else v
        opening, closing = ("[", "]") if t in (list, TList) else ("(", ")")
        out.append(opening)
        budget[0] -= 1
        _describe_items(items, budget, out, depth)
        if t in (tuple, TTuple) and len(items) == 1:
            out.append(",")
        out.append(closing)
        text = ""
    elif t is str or t is bytes:
        text = repr(v[: budget[0]])
    elif t is int:
        text = repr(v) if v.bit_length() <= 256 else f"<int of {v.bit_length()} bits>"
    elif v is None or t in (bool, float, complex):
        text = repr(v)
    elif t in (Global, OGlobal):
        text = v.qualified_name
    elif t is Call:
        func = v.func.qualified_name if type(v.func) is Global else "?"
        args = v.args.items if type(v.args) is TTuple else None
        if args is None or v.has_state or v.dictitems or v.listitems:
            text = f"{func}(...)"
        else:
            out.append(f"{func}(")
            budget[0] -= len(func) + 1
            _describe_items(args, budget, out, depth)
            text = ")"
    elif t is OCall:
        text = f"{v.func.qualified_name}(...)"
    elif t is OOpaque:
        text = f"<{v.what}>"
    else:
        text = f"<{t.__name__}>"
    out.append(text)
    budget[0] -= len(text)


def bounded_repr(v: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(v)`` for small plain values; for others (tree nodes, shared tuple chains that
    expand exponentially, huge strings) a description of at most about ``limit`` characters,
    computed in time proportional to ``limit``."""
    budget = [limit]
    out: list[str] = []
    _describe(v, budget, out)
    text = "".join(out)
    if budget[0] > 0 and _is_plain(v, limit):
        return repr(v)  # complete and small: exactly repr (paths must parse back)
    return text if budget[0] > 0 else text[:limit] + "..."


def _is_plain(v: Any, limit: int) -> bool:
    todo = [v]
    seen = 0
    while todo:
        x = todo.pop()
        seen += 1
        if seen > limit:
            return False
        t = type(x)
        if t is tuple:
            todo.extend(x)
        elif not (x is None or t in (bool, int, float, str, bytes, complex)):
            return False
    return True


def _seg(key: Any) -> str:
    text = key if isinstance(key, str) else bounded_repr(key)
    return text.replace("~", "~0").replace("/", "~1")


class KeySeg:
    """A path segment named by a dict key (its text is only made when a path is needed)."""

    __slots__ = ("key", "suffix")

    def __init__(self, key: Any, suffix: str = "") -> None:
        self.key = key
        self.suffix = suffix


# A place in the structure, built lazily: "" (the top) or (parent, segment), a segment being a
# list index, a fixed name ("args", "#state", ...) or a KeySeg. Building a child costs one
# tuple whatever the keys above it hold; the "/a/0/b" text (see docs/convert.md) is made only
# for a recorded type or an error, and bounded.
Path = Any
MAX_PATH_CHARS = 64 * 1024  # a recorded path longer than this is refused (inspect: skipped)
MAX_RECORDED_CHARS = 32 << 20  # all recorded paths together


class Paths:
    """Turns lazy paths into text, each dict key's segment made once (by key identity)."""

    def __init__(self) -> None:
        self.segs: dict[int, tuple[Any, str]] = {}

    def seg(self, s: Any) -> str:
        if type(s) is int:
            return str(s)
        if type(s) is str:
            return s
        key = s.key
        suffix: str = s.suffix
        got = self.segs.get(id(key))
        if got is None:
            got = (key, _seg(key))  # the key is kept alive: its id stays its own
            self.segs[id(key)] = got
        return got[1] + suffix

    def text(self, path: Path, limit: int = MAX_PATH_CHARS) -> str | None:
        """``/a/0/b``, or None when it is longer than ``limit`` characters."""
        parts: list[str] = []
        size = 0
        while path != "":
            path, s = path
            part = self.seg(s)
            size += len(part) + 1
            if size > limit:
                return None
            parts.append(part)
        return "/" + "/".join(reversed(parts)) if parts else ""

    def shown(self, path: Path, limit: int = 200) -> str:
        """The path for a message: ``/`` for the top, cut after ``limit`` characters."""
        text = self.text(path)
        if text is None:
            return f"(a path longer than {MAX_PATH_CHARS} characters)"
        return (text[:limit] + "...") if len(text) > limit else (text or "/")


def _unwrap_bytes(node: Any, *, text: bool = False) -> bytes | None:
    """bytes, or protocol 2's ``_codecs.encode(text, 'latin1')`` spelling of them; with
    ``text``, also a ``str`` as numpy's ``ndarray.__setstate__`` and ``scalar`` take it (its
    latin-1 bytes: a Python 2 pickle's data, read with ``encoding='latin1'`` as numpy.load
    does, is the STRING's own bytes)."""
    t = type(node)
    if t is bytes:
        return node  # type: ignore[no-any-return]
    if text and t is Py2Str:
        raw: bytes = node.raw
        return raw
    if text and t is str:
        try:
            return str.encode(node, "latin-1")
        except UnicodeEncodeError:
            return None
    if (
        type(node) is Call
        and node.func == Global("_codecs", "encode")
        and type(node.args) is TTuple
        and len(node.args.items) == 2
        and type(node.args.items[0]) is str
        and node.args.items[1] in ("latin1", "latin-1", "iso-8859-1")
        and not node.has_state
    ):
        try:
            return node.args.items[0].encode("latin-1")
        except UnicodeEncodeError:
            return None
    return None


class Converter:
    """One conversion; ``storage_sizes`` maps source record keys to their byte sizes."""

    def __init__(
        self,
        storage_sizes: dict[str, int],
        *,
        legacy: bool = False,
    ) -> None:
        self.storage_sizes = storage_sizes
        self.legacy = legacy
        self.allowed = weights_only_globals()
        self.memo: dict[int, Any] = {}
        self.busy: set[int] = set()
        self.key_sizes: dict[int, tuple[Any, int]] = {}  # id(tuple) -> (it, values it expands to)
        self.omega_memo: dict[int, Any] = {}  # id(config node) -> its content
        self.native: dict[int, bool] = {}  # id(TTuple key) -> converted without a change
        self.result = Result(root=None)
        self.paths = Paths()
        self.recorded_chars = 0
        self.next_key = 0
        for key in storage_sizes:
            if key.isdigit():
                self.next_key = max(self.next_key, int(key) + 1)

    # ------------------------------------------------------------------ entry
    def run(self, root: Any) -> Result:
        self.result.root = self.value(root, "", 0, strict=False)
        return self.result

    # Hooks a describer (``ckptguard._inspect``) overrides to show instead of refusing.
    def refuse(self, path: Path, problem: str, hint: str | None = None) -> Any:
        """What a value that cannot be converted becomes: convert raises ConvertError."""
        raise ConvertError(
            f"cannot convert the value at {self.paths.shown(path)}: {problem}",
            hint=hint
            or "this file cannot be rewritten for weights-only loading; keep loading "
            "it with ckptguard.load(..., allow=[...])",
        )

    def record(self, path: Path, g: Global, how: str, strict: bool) -> bool:
        if strict:
            return False
        text = self.paths.text(path)
        if text is not None:
            self.recorded_chars += len(text)
        if text is None or self.recorded_chars > MAX_RECORDED_CHARS:
            return self.unrecordable(path, g, text is None)
        self.result.types.setdefault(
            text, {"type": g.qualified_name, "module": g.module, "as": how}
        )
        return True

    def unrecordable(self, path: Path, g: Global, too_long: bool) -> bool:
        """A converted value whose path cannot be recorded (too long, or all paths together
        too long): convert refuses the file."""
        what = (
            f"longer than {MAX_PATH_CHARS} characters"
            if too_long
            else f"together longer than {MAX_RECORDED_CHARS} characters"
        )
        raise ConvertError(
            f"cannot record the original type {g.qualified_name} at "
            f"{self.paths.shown(path)}: the paths of converted values are {what} (the keys "
            "above them are too long)",
            hint="this file cannot be rewritten with its types recorded; keep loading it "
            "with ckptguard.load(SRC, allow=[...])",
        )

    def dangerous_call(self, func: Global) -> Any:
        """What a call of ``func`` becomes before any other rule, or None (convert: no such
        rule; the scan has refused dangerous files before conversion starts)."""
        return None

    # ------------------------------------------------------------------ dispatch
    def value(self, node: Any, path: Path, depth: int, *, strict: bool) -> Any:
        t = type(node)
        if node is None or t in (bool, str, float, bytes):
            return node
        if t is int:
            if node.bit_length() > 8 * 255 - 1:
                return self.refuse(path, "an integer too large for weights-only loading")
            return node
        if t is Py2Str:
            return self.py2_text(node, path)
        if depth > MAX_DEPTH:
            return self.refuse(path, f"nested more than {MAX_DEPTH} levels deep")
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.busy:
            return self.refuse(path, "a value that contains itself through a tuple or object")
        self.busy.add(key)
        try:
            out = self._value(node, path, depth + 1, strict)
        finally:
            self.busy.discard(key)
        self.memo[key] = out
        return out

    def py2_text(self, node: Py2Str, path: Path) -> Any:
        """A Python 2 ``str`` used as text: what torch.load reads (UTF-8 text)."""
        try:
            return node.raw.decode("utf-8")
        except UnicodeDecodeError:
            return self.refuse(
                path,
                "a Python 2 byte string that is not UTF-8 text (torch.load fails on it; "
                "only encoding='latin1' reads it, as different text)",
            )

    def _value(self, node: Any, path: Path, depth: int, strict: bool) -> Any:
        t = type(node)
        plain = _PLAIN  # plain items are kept as they are, with no path built for them
        if t is TList:
            out_list: list[Any] = []
            self.memo[id(node)] = out_list  # lists may contain themselves
            out_list.extend(
                v if type(v) in plain else self.value(v, (path, i), depth, strict=strict)
                for i, v in enumerate(node.items)
            )
            return out_list
        if t is TDict:
            out_dict: dict[Any, Any] = {}
            self.memo[id(node)] = out_dict
            self.fill_dict(out_dict, node.items, path, depth, strict)
            return out_dict
        if t is TTuple:
            return tuple(
                [
                    v if type(v) in plain else self.value(v, (path, i), depth, strict=strict)
                    for i, v in enumerate(node.items)
                ]
            )
        if t is TSet:
            items = [
                self.value(v, (path, i), depth, strict=strict) for i, v in enumerate(node.items)
            ]
            items = self.checked_items(list(zip(node.items, items, strict=True)), path, "set")
            if node.frozen and not self.record(
                path, Global("builtins", "frozenset"), "set", strict
            ):
                return self.refuse(path, "a frozenset inside a torch object")
            return OSet(items, frozen=node.frozen)
        if t is PersId:
            return self.storage(node.pid, path)
        if t is Global:
            if node.qualified_name in self.allowed:
                return OGlobal(node.module, node.name)
            if not self.record(path, node, "global", strict):
                return self.refuse(path, f"the global {node.qualified_name} inside a torch object")
            return node.qualified_name
        if t is Call:
            return self.call(node, path, depth, strict)
        return self.refuse(path, f"an unexpected pickle value ({t.__name__})")

    def fill_dict(
        self,
        out: dict[Any, Any],
        items: list[tuple[Any, Any]],
        path: Path,
        depth: int,
        strict: bool,
    ) -> None:
        plain = _PLAIN  # plain keys and values are kept as they are, with no path built
        changed: dict[Any, Any] | None = None  # keys conversion changed -> their original
        for k, v in items:
            if type(k) in plain:
                ck = k
                if changed is not None and ck in changed:  # equal to a converted key
                    ck = self.collision(path, changed[ck], k, ck)
            else:
                ck = self.key(k, path, depth, strict)
                if not self.unchanged(k, ck):
                    if ck in out:
                        first = changed.get(ck, ck) if changed is not None else ck
                        if first is not k:  # the same object twice is one entry anyway
                            ck = self.collision(path, first, k, ck)
                    if changed is None:
                        changed = {}
                    changed.setdefault(ck, k)
                elif changed is not None and ck in changed:
                    ck = self.collision(path, changed[ck], k, ck)
            if type(v) in plain:
                out[ck] = v
            else:
                out[ck] = self.value(v, (path, KeySeg(ck)), depth, strict=strict)

    # ------------------------------------------------------------------ keys
    def key(self, k: Any, path: Path, depth: int, strict: bool) -> Any:
        """A dict key (or set element) converted; refused when it is unhashable or expands
        to more than MAX_KEY_VALUES values (hashing it would walk them all)."""
        ck = self.value(k, (path, KeySeg(k, "#key")), depth, strict=strict)
        if type(ck) is tuple and self.key_size(ck) > MAX_KEY_VALUES:
            return self.refuse(
                path,
                f"a dict key or set element that expands to more than {MAX_KEY_VALUES} values "
                "(shared tuples)",
                hint="this file cannot be rewritten safely, and a plain unpickler would hang "
                "hashing the key; do not load it (details: ckptguard scan SRC)",
            )
        try:
            hash(ck)
        except TypeError:
            return self.refuse(path, f"a dict key of type {type(ck).__name__} (unhashable)")
        return ck

    def key_size(self, v: tuple[Any, ...]) -> int:
        """How many values ``v`` expands to (memoized by identity: linear however it shares;
        counts stop a little past the bound)."""
        got = self.key_sizes.get(id(v))
        if got is not None:
            return got[1]
        n = 1
        for x in v:
            n += self.key_size(x) if type(x) is tuple else 1
            if n > MAX_KEY_VALUES:
                break
        self.key_sizes[id(v)] = (v, n)
        return n

    def unchanged(self, k: Any, ck: Any) -> bool:
        """Whether ``ck`` equals other converted keys exactly when the originals would be equal
        once loaded: plain values, tuples of them, and kept torch objects. A key made from an
        object (an Enum member -> its value, a numpy dtype -> its name, a global -> its name)
        is changed: it may now equal a key it differed from."""
        if ck is k or type(ck) in (OGlobal, OCall, OStorage, OSet, OOpaque):
            return True
        if type(k) is TTuple and type(ck) is tuple:
            got = self.native.get(id(k))
            if got is None:
                got = all(self.unchanged(x, cx) for x, cx in zip(k.items, ck, strict=True))
                self.native[id(k)] = got
            return got
        return False

    def collision(self, path: Path, first: Any, second: Any, ck: Any) -> Any:
        """Two keys that differ in the file are equal after conversion: one entry would be
        lost. convert refuses (inspect shows a marker key)."""
        problem = (
            f"two keys (or set elements) become equal after conversion: "
            f"{bounded_repr(first, 200)} and {bounded_repr(second, 200)} would both be "
            f"{bounded_repr(ck, 200)}, so one entry would be lost"
        )
        return self.refuse(
            path,
            problem,
            hint="convert never drops an entry: keep loading the original with "
            "ckptguard.load(SRC, allow=[...]) (ckptguard scan SRC lists what to allow), or "
            "give the entries distinct keys where the file was made",
        )

    def checked_items(self, pairs: list[tuple[Any, Any]], path: Path, what: str) -> list[Any]:
        """The converted elements of a set or the keys of an OrderedDict's items (``pairs``
        of original and converted), refused when two differ in the file but are equal after
        conversion (the loader would merge them), or when one is too large to hash."""
        out: list[Any] = []
        seen: dict[Any, tuple[Any, bool]] | None = None
        for k, converted in pairs:
            ck = converted
            if type(ck) is tuple and self.key_size(ck) > MAX_KEY_VALUES:
                ck = self.refuse(
                    path,
                    f"{a_or_an(str(what))} element that expands to more than "
                    f"{MAX_KEY_VALUES} values",
                )
            same = self.unchanged(k, ck)
            if seen is None and not same:
                seen = {}
                for (o, _c), c in zip(pairs, out, strict=False):  # all unchanged so far
                    with contextlib.suppress(TypeError):
                        seen.setdefault(c, (o, True))
            if seen is not None:
                try:
                    prev = seen.get(ck)
                except TypeError:  # unhashable: the loader fails on it, as the source would
                    prev = None
                if prev is not None and (not same or not prev[1]) and prev[0] is not k:
                    ck = self.collision(path, prev[0], k, ck)
                else:
                    with contextlib.suppress(TypeError):
                        seen.setdefault(ck, (k, same))
            out.append(ck)
        return out

    # ------------------------------------------------------------------ calls
    def call(self, node: Call, path: Path, depth: int, strict: bool) -> Any:
        func = node.func
        if type(func) is not Global:
            return self.refuse(path, "a call of a computed value (not a global)")
        qn = func.qualified_name
        shown = self.dangerous_call(func)
        if shown is not None:
            return shown
        if qn in self.allowed:
            return self.keep(node, func, path, depth)
        if func.module in _NUMPY_MODULES and func.name == "_reconstruct":
            return self.ndarray(node, path, strict)
        if func.module in _NUMPY_MODULES and func.name == "scalar":
            return self.np_scalar(node, path, strict)
        if func.module in _NUMERIC_MODULES and func.name == "_frombuffer":
            return self.frombuffer(node, path, strict)
        if qn == "numpy.dtype":
            code = self.dtype_code(node)
            if code is None or not self.record(path, func, "value", strict):
                return self.refuse(path, "a numpy dtype that has no plain name")
            return NUMPY_NAMES[code]
        if strict:
            return self.refuse(path, f"an object of type {qn} inside a torch object")
        cls = func
        args = node.args.items if type(node.args) is TTuple else None
        if qn == "copyreg._reconstructor" and args and type(args[0]) is Global:
            cls = args[0]
            args = ()
        elif qn == "copyreg.__newobj__" and args and type(args[0]) is Global:
            cls = args[0]
            args = args[1:]
        if cls.module.startswith("omegaconf.") and cls.name in ("DictConfig", "ListConfig"):
            return self.omegaconf(node, cls, path, depth)
        if args is None:
            return self.refuse(path, f"a call of {qn} whose arguments are not a tuple")
        return self.obj(node, cls, args, path, depth)

    def keep(self, node: Call, func: Global, path: Path, depth: int) -> Any:
        qn = func.qualified_name
        if node.op in ("NEWOBJ_EX",) and not (type(node.kwargs) is TDict and not node.kwargs.items):
            return self.refuse(path, f"{qn} called with keyword arguments")
        if node.has_state and qn not in _BUILDABLE and not qn.startswith("torch._utils."):
            return self.refuse(path, f"{qn} with pickled state (weights-only loading refuses it)")
        is_container = qn in ("collections.OrderedDict", "collections.Counter")
        args = self.value(node.args, (path, "#args"), depth, strict=True)
        if type(args) is not tuple:
            return self.refuse(path, f"a call of {qn} whose arguments are not a tuple")
        out = OCall(
            OGlobal(func.module, func.name), args, op="NEWOBJ" if node.op == "NEWOBJ" else "REDUCE"
        )
        self.memo[id(node)] = out
        if node.has_state:
            out.state = self.value(node.state, (path, "#state"), depth, strict=not is_container)
            out.has_state = True
        if node.dictitems and not is_container:
            return self.refuse(path, f"items set on {a_or_an(qn)}")
        keys = [self.key(k, path, depth, False) for k, _v in node.dictitems]
        keys = self.checked_items(
            [(k, ck) for (k, _v), ck in zip(node.dictitems, keys, strict=True)], path, "key"
        )
        for ck, (_k, v) in zip(keys, node.dictitems, strict=True):
            out.dictitems.append((ck, self.value(v, (path, KeySeg(ck)), depth, strict=False)))
        if node.listitems:
            return self.refuse(path, f"items appended to {a_or_an(qn)}")
        return out

    def obj(self, node: Call, cls: Global, args: tuple[Any, ...], path: Path, depth: int) -> Any:
        has_items = bool(node.dictitems) or bool(node.listitems)
        if node.op == "NEWOBJ_EX" and type(node.kwargs) is TDict and node.kwargs.items:
            out: Any = {}
            self.memo[id(node)] = out
            out["args"] = self.value(TTuple(args), (path, "args"), depth, strict=False)
            kw: dict[Any, Any] = {}
            self.fill_dict(kw, node.kwargs.items, (path, "kwargs"), depth, False)
            out["kwargs"] = kw
            how = "call"
        elif node.has_state or has_items:
            state = node.state if node.has_state else None
            if (
                type(state) is TTuple
                and len(state.items) == 2
                and (state.items[0] is None or type(state.items[0]) is TDict)
                and type(state.items[1]) is TDict
            ):
                merged = TDict(list((state.items[0] or TDict()).items) + state.items[1].items)
                state = merged
            if node.dictitems and not node.listitems and (state is None or _empty(state)):
                out = {}
                self.memo[id(node)] = out
                self.fill_dict(out, node.dictitems, path, depth, False)
                how = "dict"
            elif node.listitems and not node.dictitems and (state is None or _empty(state)):
                out = []
                self.memo[id(node)] = out
                out.extend(
                    self.value(v, (path, i), depth, strict=False)
                    for i, v in enumerate(node.listitems)
                )
                how = "list"
            elif not has_items and not args:
                out = self.value(state, path, depth, strict=False)
                how = "state"
            else:
                out = {}
                self.memo[id(node)] = out
                if args:
                    out["args"] = self.value(TTuple(args), (path, "args"), depth, strict=False)
                out["state"] = self.value(state, (path, "state"), depth, strict=False)
                if node.dictitems:
                    items: dict[Any, Any] = {}
                    self.fill_dict(items, node.dictitems, (path, "items"), depth, False)
                    out["items"] = items
                if node.listitems:
                    out["list"] = [
                        self.value(v, ((path, "list"), i), depth, strict=False)
                        for i, v in enumerate(node.listitems)
                    ]
                how = "parts"
        elif len(args) == 1:
            out = self.value(args[0], path, depth, strict=False)
            how = "value"
        else:
            out = [self.value(v, (path, i), depth, strict=False) for i, v in enumerate(args)]
            how = "args"
        self.record(path, cls, how, False)
        return out

    def omegaconf(self, node: Call, cls: Global, path: Path, depth: int) -> Any:
        state = node.state
        content: Any = None
        if type(state) is TDict:
            for k, v in state.items:
                if k == "_content":
                    content = v
        out = self.omega_value(content, path, depth)
        self.record(path, cls, "content", False)
        return out

    def omega_value(self, v: Any, path: Path, depth: int) -> Any:
        """A config's content, each node interpreted once (memoized by identity, as in
        :meth:`value`): shared sub-configs stay shared and cost nothing more."""
        if depth > MAX_DEPTH:
            return self.refuse(path, f"nested more than {MAX_DEPTH} levels deep")
        t = type(v)
        if t is not Call and t is not TDict and t is not TList:
            return self.value(v, path, depth + 1, strict=False)
        key = id(v)
        if key in self.omega_memo:
            return self.omega_memo[key]
        if key in self.busy:
            return self.refuse(path, "a config that contains itself")
        self.busy.add(key)
        try:
            out = self._omega_value(v, path, depth)
        finally:
            self.busy.discard(key)
        self.omega_memo[key] = out
        return out

    def _omega_value(self, v: Any, path: Path, depth: int) -> Any:
        if type(v) is Call and type(v.func) is Global and v.func.module.startswith("omegaconf."):
            if v.func.name in ("DictConfig", "ListConfig"):
                return self.omegaconf(v, v.func, path, depth + 1)
            if type(v.state) is TDict:  # a value node: its _val
                for k, val in v.state.items:
                    if k == "_val":
                        return self.omega_value(val, path, depth + 1)
            return self.value(v, path, depth + 1, strict=False)
        if type(v) is TDict:
            out: dict[Any, Any] = {}
            self.omega_memo[id(v)] = out  # configs may contain themselves through it
            keys = [self.key(k, path, depth + 1, False) for k, _val in v.items]
            keys = self.checked_items(
                [(k, ck) for (k, _val), ck in zip(v.items, keys, strict=True)], path, "key"
            )
            for ck, (_k, val) in zip(keys, v.items, strict=True):
                out[ck] = self.omega_value(val, (path, KeySeg(ck)), depth + 1)
            return out
        if type(v) is TList:
            out_list: list[Any] = []
            self.omega_memo[id(v)] = out_list
            out_list.extend(
                self.omega_value(x, (path, i), depth + 1) for i, x in enumerate(v.items)
            )
            return out_list
        return self.value(v, path, depth + 1, strict=False)

    # ------------------------------------------------------------------ storages
    def storage(self, pid: Any, path: Path) -> Any:
        items = pid.items if type(pid) is TTuple else None
        if not items or len(items) not in (5, 6) or items[0] != "storage":
            return self.refuse(path, "a persistent id that is not a torch storage reference")
        _, cls, key, location, numel = items[:5]
        if len(items) == 6 and items[5] is not None:
            return self.refuse(path, "a legacy storage view (view metadata)")
        if (
            type(cls) is not Global
            or cls.qualified_name not in self.allowed
            or not cls.name.endswith("Storage")
            or type(key) is not str
            or type(location) is not str
            or type(numel) is not int
            or numel < 0
        ):
            return self.refuse(path, "a malformed torch storage reference")
        known = self.result.storages.get(key)
        if known is not None:
            if known.storage_class != OGlobal(cls.module, cls.name) or known.numel != numel:
                return self.refuse(path, f"storage {key!r} referenced with different types")
            return known

        elsize = storage_element_size(cls.name)
        if elsize is None:
            return self.refuse(path, f"storage class {cls.qualified_name} of unknown element size")
        size = self.storage_sizes.get(key)
        if size is None or size < numel * elsize:
            raise ConvertError(
                f"storage {key!r} is missing or shorter than its tensor needs",
                hint="the file is truncated or altered; re-download it",
            )
        st = OStorage(OGlobal(cls.module, cls.name), key, location, numel, numel * elsize)
        self.result.storages[key] = st
        return st

    def new_tensor(self, raw: bytes, code: str, shape: tuple[int, ...], fortran: bool) -> OCall:
        itemsize = int(code[1:])
        strides: list[int] = []
        acc = 1
        dims = list(shape) if fortran else list(reversed(shape))
        for d in dims:
            strides.append(acc)
            acc *= max(d, 1)
        stride = tuple(strides) if fortran else tuple(reversed(strides))
        key = str(self.next_key)
        self.next_key += 1
        while key in self.storage_sizes:
            key = str(self.next_key)
            self.next_key += 1
        st = OStorage(_UNTYPED, key, "cpu", len(raw), len(raw), data=raw)
        self.result.storages[key] = st
        dtype = OGlobal("torch", _NUMPY_DTYPES[code][0])
        del itemsize
        return OCall(_V3, (st, 0, tuple(shape), stride, False, OCall(_ODICT, ()), dtype))

    # ------------------------------------------------------------------ numpy
    def dtype_code(self, node: Any) -> str | None:
        """'f4', 'i8', ... for a pickled little-endian numeric numpy dtype, else None."""
        if not (type(node) is Call and node.func == Global("numpy", "dtype")):
            return None
        args = node.args.items if type(node.args) is TTuple else ()
        if not args or type(args[0]) is not str:
            return None
        code = args[0]
        code = _NUMPY_CHARS.get(code, code)
        if code not in _NUMPY_DTYPES:
            return None
        state = node.state.items if type(node.state) is TTuple else ()
        order = state[1] if len(state) > 1 else "|"
        if order == ">" or (order not in ("<", "|", "=")):
            return None
        return code

    def ndarray(self, node: Call, path: Path, strict: bool) -> Any:
        args = node.args.items if type(node.args) is TTuple else ()
        state = node.state.items if type(node.state) is TTuple else ()
        if not args or args[0] != Global("numpy", "ndarray") or len(state) != 5:
            return self.refuse(path, "a numpy array subclass or an unknown array layout")
        _, shape_n, dtype_n, fortran, raw_n = state
        shape = shape_n.items if type(shape_n) is TTuple else None
        code = self.dtype_code(dtype_n)
        raw = _unwrap_bytes(raw_n, text=True)
        if code is None or shape is None or not all(type(d) is int and d >= 0 for d in shape):
            return self.refuse(path, "a numpy array whose dtype has no tensor form")
        if raw is None or len(raw) != math.prod(shape) * int(code[1:]):
            return self.refuse(path, "a numpy array whose data does not match its shape")
        if not self.record(path, Global("numpy", "ndarray"), "tensor", strict):
            return self.refuse(path, "a numpy array inside a torch object")
        return self.new_tensor(raw, code, tuple(shape), bool(fortran))

    def frombuffer(self, node: Call, path: Path, strict: bool) -> Any:
        args = node.args.items if type(node.args) is TTuple else ()
        if len(args) != 4:
            return self.refuse(path, "a numpy _frombuffer call with unexpected arguments")
        raw, dtype_n, shape_n, order = args
        raw_b = _unwrap_bytes(raw)
        code = self.dtype_code(dtype_n)
        shape = shape_n.items if type(shape_n) is TTuple else None
        if raw_b is None or code is None or shape is None or order not in ("C", "F"):
            return self.refuse(path, "a numpy array whose dtype has no tensor form")
        if not all(type(d) is int and d >= 0 for d in shape) or len(raw_b) != math.prod(
            shape
        ) * int(code[1:]):
            return self.refuse(path, "a numpy array whose data does not match its shape")
        if not self.record(path, Global("numpy", "ndarray"), "tensor", strict):
            return self.refuse(path, "a numpy array inside a torch object")
        return self.new_tensor(raw_b, code, tuple(shape), order == "F")

    def np_scalar(self, node: Call, path: Path, strict: bool) -> Any:
        args = node.args.items if type(node.args) is TTuple else ()
        if len(args) != 2:
            return self.refuse(path, "a numpy scalar with unexpected arguments")
        code = self.dtype_code(args[0])
        raw = _unwrap_bytes(args[1], text=True)
        if code is None or raw is None:
            return self.refuse(path, "a numpy scalar whose dtype has no plain form")
        fmt = "<" + _NUMPY_DTYPES[code][1]
        if struct.calcsize(fmt) != len(raw):
            return self.refuse(path, "a numpy scalar whose data does not match its dtype")
        vals = struct.unpack(fmt, raw)
        value: Any = complex(vals[0], vals[1]) if len(vals) == 2 else vals[0]
        if not self.record(path, Global("numpy", NUMPY_NAMES[code]), "value", strict):
            return self.refuse(path, "a numpy scalar inside a torch object")
        return value


def _empty(state: Any) -> bool:
    return (type(state) is TDict and not state.items) or (type(state) is TTuple and not state.items)


def attach_types(result: Result, source: str, source_format: str) -> None:
    """Add the ``__ckptguard__`` entry to a dict root when anything was converted."""
    root = result.root
    if not result.types:
        return
    if isinstance(root, dict) and FORMAT_KEY not in root:
        root[FORMAT_KEY] = {
            "version": 1,
            "source": source,
            "source_format": source_format,
            "types": {p: dict(v) for p, v in sorted(result.types.items())},
        }
    else:
        result.notes.append(
            "the top level is not a dict: the original types are not recorded in the file"
        )
