"""Bounds on what a `safe` pickle may make its loader do: the call rules and their constants.

The data (which calls of each vetted global a `safe` verdict covers, with reasons) is
``ckptguard/data/call_bounds.toml``; this module parses it into :class:`CallRule` objects and
holds the constants the argument kinds use. The symbolic unpickler (``_vm``) applies them
where a pickle calls a global, and bounds its own walks and the loader's with a work budget
proportional to the pickle's size.

Argument kinds (``NAME:KIND`` in the data):

* ``any``          no constraint (the argument is still counted in the work budget)
* ``iterable``     iterated once: a container the pickle built, a str/bytes, or the result of a
                   call whose length the scan knows (a range of plain integers, a list/tuple/...
                   built from one of these); its length is charged to the budget
* ``hashed``       an ``iterable`` whose items are hashed (set, frozenset, Counter)
* ``pairs``        a mapping, or an ``iterable`` of pairs whose first items are hashed
* ``codec``        a codec name from :data:`CODECS` (their modules are imported here, once)
* ``errors``       a codec error handler: only ``"strict"``
* ``bytes_source`` an int below the allocation bound, a str/bytes, or an ``iterable``
* ``int``          a plain integer (range bounds)
* ``small``        a plain integer of at most :data:`SMALL_MAX`
* ``number``       a plain number: int of at most :data:`MAX_INT_BITS` bits, float, or a str/bytes
                   of at most :data:`MAX_DIGITS` characters
* ``bigint``       anything, but an int of at most :data:`MAX_INT_BITS` bits
* ``rational``     a ``number`` whose str has no exponent (``Fraction('1e999999999')``)
* ``const``        a plain constant (str, bytes, bool, None, a float, a ``bigint`` int)
* ``shape``        an int or a tuple/list of ints, all >= 0, whose product is below the
                   allocation bound
* ``dtype_spec``   a numpy type string as numpy pickles write them (:data:`DTYPE_SPEC`)
* ``bitgen``       a numpy bit-generator name (:data:`BIT_GENERATORS`) or a global
* ``state``        instance state the callable applies (``__setstate__``/setattr): any value,
                   but a dict is checked like a BUILD state (omegaconf resolver calls)
* ``callee(...)``  a global that the callable calls with other arguments: ``callee(state?)``
                   (with ``state`` unless it is None) or ``callee(*args)`` (the items of the
                   tuple ``args``); that global's own rule applies to them
"""

from __future__ import annotations

import codecs
import functools
import os

from ckptguard._errors import PolicyError
from ckptguard._record import Record, set_field

CALL_BOUNDS_FILE = os.path.normpath(
    os.path.join(os.path.dirname(__file__), os.pardir, "data", "call_bounds.toml")
)

# Codec names a safe pickle may pass to _codecs.encode / bytes / bytearray / str (compared
# lower-cased). numpy and torch write 'latin1' (protocol-2 bytes); the others are the common
# spellings of the same three codecs. The scan imports their modules (warm_codecs) before it
# approves a call that names one, so the load never imports a codec module (any other name
# may: 'idna' imports encodings.idna and stringprep).
CODECS = frozenset(
    {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1", "utf-8", "utf8", "utf_8",
     "ascii", "us-ascii"}
)  # fmt: skip
_warm = [False]


def warm_codecs() -> None:
    """Look up every vetted codec once (importing its encodings.* module), so that a load of a
    file the scan approved finds them all in the codec registry already."""
    if not _warm[0]:
        for name in CODECS:
            codecs.lookup(name)
        _warm[0] = True


ERROR_HANDLERS = frozenset({"strict"})

MAX_DIGITS = 4300  # CPython's default int_max_str_digits: str <-> int is quadratic beyond
MAX_INT_BITS = 14_300  # about MAX_DIGITS decimal digits
SMALL_MAX = 1024
MAX_KEY_DEPTH = 200  # nesting of a dict key / set item: CPython hashes tuples recursively in C
MAX_HASH_COLLISIONS = 256  # distinct keys of one dict/set sharing one hash (quadratic beyond)
MAX_CALLEE_DEPTH = 8  # callee(...) of callee(...) ...
# numpy's dtype.__reduce__ writes kind letter + itemsize ('f8', 'i8', 'b1', 'O8', 'V16', 'U5'),
# optionally after a byte-order character.
DTYPE_KINDS = frozenset("biufcOSUVMm?")


def dtype_itemsize(spec: str) -> int:
    """The itemsize a numpy type string as numpy pickles write it names (0 when it names
    none), or -1 when ``spec`` is not such a string."""
    body = spec[1:] if spec[:1] in ("<", ">", "|", "=") else spec
    if not body or body[0] not in DTYPE_KINDS:
        return -1
    digits = body[1:]
    if not digits:
        return 0
    if len(digits) > 12 or not digits.isascii() or not digits.isdigit():
        return -1
    return int(digits)


BIT_GENERATORS = frozenset({"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"})

# The work budget of one pickle: steps of the real loader (items iterated, hashed, copied) the
# scan accounts for. Proportional to the pickle's size, plus a floor for small pickles.
WORK_BASE = 2_000_000
WORK_PER_BYTE = 8
ALLOC_BASE = 1 << 20  # elements/bytes one call may allocate, plus ALLOC_PER_BYTE per pickle byte
ALLOC_PER_BYTE = 8

KINDS = frozenset(
    {"any", "iterable", "hashed", "pairs", "codec", "errors", "bytes_source", "int", "small",
     "number", "bigint", "rational", "const", "shape", "dtype_spec", "bitgen", "callee",
     "state"}
)  # fmt: skip


class Param(Record):
    """One parameter of a call rule; ``callee_args`` names what a ``callee`` is called with."""

    __slots__ = ("callee_args", "kind", "name")
    name: str
    kind: str
    callee_args: tuple[str, ...]  # e.g. ("state?",) or ("*args",)

    def __init__(self, name: str, kind: str, callee_args: tuple[str, ...] = ()) -> None:
        set_field(self, "name", name)
        set_field(self, "kind", kind)
        set_field(self, "callee_args", callee_args)


class CallRule(Record):
    """How a pickle may call one vetted global (see call_bounds.toml)."""

    __slots__ = ("mode", "params", "reason", "star")
    mode: str  # "free", "never", "empty" or "params"
    params: tuple[Param, ...]
    star: Param | None  # the kind of every positional argument ("*:KIND")
    reason: str

    def __init__(
        self, mode: str, params: tuple[Param, ...], star: Param | None, reason: str
    ) -> None:
        set_field(self, "mode", mode)
        set_field(self, "params", params)
        set_field(self, "star", star)
        set_field(self, "reason", reason)


def _parse_param(token: str) -> Param | None:
    """``NAME:KIND`` or ``NAME:callee(ARG, ...)``; None if malformed."""
    name, sep, kind = token.partition(":")
    if not sep or not (name == "*" or name.isidentifier()):
        return None
    args: tuple[str, ...] = ()
    if kind.endswith(")") and "(" in kind:
        kind, _, inner = kind[:-1].partition("(")
        args = tuple(a.strip() for a in inner.split(","))
        if not all(args):
            return None
    if kind not in KINDS or (kind == "callee") != bool(args):
        return None
    return Param(name, kind, args)


def parse_rule(name: str, text: str) -> CallRule:
    """One ``"SPEC | reason"`` entry of call_bounds.toml."""
    spec, sep, reason = text.partition(" | ")
    spec, reason = spec.strip(), reason.strip()
    if not sep or not reason:
        raise PolicyError(f"call_bounds.toml: {name}: expected 'SPEC | reason'")
    if spec in ("free", "never", "empty"):
        return CallRule(spec, (), None, reason)
    params: list[Param] = []
    star: Param | None = None
    for token in spec.split():
        p = _parse_param(token)
        if p is None:
            raise PolicyError(f"call_bounds.toml: {name}: bad parameter {token!r}")
        if p.name == "*":
            star = p
        else:
            params.append(p)
    return CallRule("params", tuple(params), star, reason)


@functools.lru_cache(maxsize=1)
def rule_texts() -> dict[tuple[str, str], str]:
    """The shipped entries, unparsed, by (module, name) as the pickle's globals resolve."""
    from ckptguard._policy._data import load_shipped_toml  # noqa: PLC0415 - cycle-free, lazy

    doc = load_shipped_toml(CALL_BOUNDS_FILE)
    table = doc.get("calls")
    if not isinstance(table, dict):
        raise PolicyError("call_bounds.toml: missing [calls]")
    texts: dict[tuple[str, str], str] = {}
    for qualified, text in table.items():
        module, dot, attr = qualified.rpartition(".")
        if not dot or not isinstance(text, str):
            raise PolicyError(f"call_bounds.toml: bad entry {qualified!r}")
        texts[(module, attr)] = text
    return texts


def rule_mode(text: str) -> str:
    """The mode of an unparsed entry (free, never, empty, params), without parsing it all."""
    spec = text.partition(" | ")[0].strip()
    return spec if spec in ("free", "never", "empty") else "params"


@functools.cache
def rule_for(key: tuple[str, str]) -> CallRule | None:
    """The parsed rule of one global (parsed on first use: most files call few of them)."""
    text = rule_texts().get(key)
    return None if text is None else parse_rule(".".join(key), text)


def call_rules() -> dict[tuple[str, str], CallRule]:
    """Every shipped rule, parsed (for checks of the data)."""
    return {key: rule for key in rule_texts() if (rule := rule_for(key)) is not None}


# ---------------------------------------------------------------- omegaconf interpolations
# omegaconf's containers and nodes are vetted as data, but a node value (``_val``) or a
# container's content (``_content``) that is a string holding ``${name:...}`` is a *call*: when
# the program reads that value, omegaconf calls the resolver registered under ``name`` in the
# loading process (``oc.env`` reads the environment; applications commonly register ``eval``)
# with arguments written by the file. What that runs is not in the file, so a `safe` verdict
# cannot cover it. Plain references (``${model.dim}``) call nothing.
OMEGACONF_VALUE_KEYS = frozenset({"_val", "_content"})
# Vetted calls whose result may be a str (or str subclass) the scan cannot read: a node value
# built by one of them may hold an interpolation.
STR_RESULT_ORIGINS = frozenset(
    {
        ("builtins", "str"), ("torch.torch_version", "TorchVersion"),
        ("copyreg", "_reconstructor"), ("torch._tensor", "_rebuild_from_type_v2"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }
)  # fmt: skip


def resolver_call(text: str) -> str | None:
    """The resolver a string makes omegaconf call (``${name:...}``, also nested), else None."""
    i = text.find("${")
    while i >= 0:
        j = i + 2
        while j < len(text) and text[j] not in "{}:":
            j += 1
        if j < len(text) and text[j] == ":":
            return text[i + 2 : j].strip()
        i = text.find("${", i + 2)
    return None
