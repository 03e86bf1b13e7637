"""Hostile samples against ckptguard's outputs and conversions (tests only; nothing here loads
them). Built opcode by opcode with :mod:`tests.pickleasm`.

* terminal forgeries: a dangerous pickle whose dict keys and global names carry escape
  sequences, carriage returns, newlines, bidi overrides and C1 controls that spell
  ``verdict: safe`` lines;
* names with lone surrogates (CPython decodes BINUNICODE with ``surrogatepass``), which broke
  the JSON and SARIF writers;
* shared list/dict DAGs (``2**depth`` paths through ``depth`` lists) and cycles, which
  ``inspect`` and ``convert`` expanded without a memo; a dict key made of a shared tuple chain;
* keys that become equal after conversion (an Enum member and its value, a numpy dtype and its
  name, a global and its name, a numpy scalar and its number).

Builders that take ``marker`` really run a payload (``os.system('touch MARKER')``) when loaded
with ``pickle.loads``; a test checks that in a subprocess.
"""

from __future__ import annotations

import shlex

from tests.pickleasm import (
    APPEND,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    NEWFALSE,
    NEWTRUE,
    NONE,
    POP,
    SETITEM,
    SETITEMS,
    STACK_GLOBAL,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binget,
    binint,
    binint1,
    binput,
    call,
    glob,
    program,
    ustr,
)

# Strings a file may hold that would rewrite a terminal: each tries to forge a clean verdict.
FORGERIES = (
    "\r\x1b[2K verdict: safe\n",
    "\n0 files scanned: 1 safe\n",
    "\x1b]0;pwned\x07\x1b[1A\x1b[2KSAFE model.pt",
    "\u202everdict: dangerous\u202c",
    "\u2066isolate\u2069\u2028verdict: safe\u2029",
    "\x9b2K\x85verdict: safe\x7f",
    "\x00nul\x08\x08\x08back",
)


def _system(marker: str) -> bytes:
    return call(glob("os", "system"), ustr(f"touch {shlex.quote(marker)}"))


def forged_keys(marker: str) -> bytes:
    """``{FORGERY: i, ..., "payload": os.system("touch MARKER")}`` (protocol 4: names given
    by STACK_GLOBAL can hold anything)."""
    items = b"".join(ustr(k) + binint1(i) for i, k in enumerate(FORGERIES))
    forged_global = (
        ustr("x\r\x1b[2K\n0 files scanned: 1 safe\n")
        + ustr("y\u202e\x9bz")
        + STACK_GLOBAL
        + MARK
        + TUPLE
        + b"R"
    )
    return program(
        EMPTY_DICT,
        MARK,
        items,
        ustr("payload"),
        _system(marker),
        ustr("forged"),
        forged_global,
        SETITEMS,
        protocol=4,
    )


def surrogate_names(marker: str) -> bytes:
    """A dangerous call plus a global whose module and name hold lone surrogates (and a key
    holding them), the way CPython reads them from BINUNICODE (``surrogatepass``)."""
    odd = ustr("mod\ud800x") + ustr("na\udfffme\udc80") + STACK_GLOBAL + MARK + TUPLE + b"R"
    return program(
        EMPTY_DICT,
        MARK,
        ustr("payload"),
        _system(marker),  # first: it runs before the odd name fails to import
        ustr("k\ud83d\ude00\udc00"),
        odd,
        SETITEMS,
        protocol=4,
    )


def shared_lists(depth: int) -> bytes:
    """``{"model": L[depth]}`` with ``L[0] = [1]`` and ``L[i+1] = [L[i], L[i]]``: ``depth``
    small lists, ``2**depth`` paths to the innermost one."""
    parts = [EMPTY_DICT, ustr("model"), EMPTY_LIST, binput(0), binint1(1), APPEND, POP]
    for i in range(depth):
        parts += [EMPTY_LIST, binput(i + 1), binget(i), APPEND, binget(i), APPEND, POP]
    parts += [binget(depth), SETITEM]
    return program(*parts)


def shared_dicts(depth: int) -> bytes:
    """Like :func:`shared_lists` with dicts: ``D[i+1] = {"a": D[i], "b": D[i]}``."""
    parts = [EMPTY_DICT, ustr("model"), EMPTY_DICT, binput(0), ustr("x"), binint1(1), SETITEM]
    parts += [POP]
    for i in range(depth):
        parts += [EMPTY_DICT, binput(i + 1), MARK, ustr("a"), binget(i), ustr("b"), binget(i)]
        parts += [SETITEMS, POP]
    parts += [binget(depth), SETITEM]
    return program(*parts)


def list_cycle() -> bytes:
    """``{"model": L}`` where ``L = [1, L, L]`` contains itself."""
    return program(
        EMPTY_DICT,
        ustr("model"),
        EMPTY_LIST,
        binput(0),
        MARK,
        binint1(1),
        binget(0),
        binget(0),
        b"e",  # APPENDS
        SETITEM,
    )


def tuple_chain_key(depth: int) -> bytes:
    """``{T[depth]: 1}`` with ``T[0] = (1,)`` and ``T[i+1] = (T[i], T[i])``: a key that
    expands to ``2**depth`` values (hashing it walks them all)."""
    parts = [EMPTY_DICT, binint1(1), TUPLE1, binput(0), POP]
    for i in range(depth):
        parts += [binget(i), binget(i), TUPLE2, binput(i + 1), POP]
    parts += [binget(depth), binint1(1), SETITEM]
    return program(*parts)


# --- keys that become equal after conversion --------------------------------------------


def _enum(module: str, name: str, value: bytes) -> bytes:
    return call(glob(module, name), value)


def enum_key_and_value() -> bytes:
    """``{Color(1): "enum", 1: "int"}``: the Enum member converts to its value 1."""
    return program(
        EMPTY_DICT,
        MARK,
        _enum("mypkg.colors", "Color", binint1(1)),
        ustr("enum"),
        binint1(1),
        ustr("int"),
        SETITEMS,
    )


def _numpy_dtype(code: str) -> bytes:
    # numpy.dtype('f4', False, True) + BUILD state (3, '<', None, None, None, -1, -1, 0)
    state = MARK + binint1(3) + ustr("<") + NONE * 3 + binint(-1) + binint(-1) + binint1(0) + TUPLE
    return call(glob("numpy", "dtype"), ustr(code), NEWFALSE, NEWTRUE) + state + BUILD


def dtype_key_and_name() -> bytes:
    """``{numpy.dtype('float32'): "dtype", "float32": "name"}``."""
    return program(
        EMPTY_DICT,
        MARK,
        _numpy_dtype("f4"),
        ustr("dtype"),
        ustr("float32"),
        ustr("name"),
        SETITEMS,
    )


def global_key_and_name() -> bytes:
    """``{mypkg.models.Net: "class", "mypkg.models.Net": "name"}``: a class used as a key
    converts to its dotted name."""
    return program(
        EMPTY_DICT,
        MARK,
        glob("mypkg.models", "Net"),
        ustr("class"),
        ustr("mypkg.models.Net"),
        ustr("name"),
        SETITEMS,
    )


def path_key_and_str() -> bytes:
    """``{PurePosixPath("a"): "path", "a": "str"}``: an object rebuilt from one argument
    converts to that argument."""
    return program(
        EMPTY_DICT,
        MARK,
        call(glob("pathlib", "PurePosixPath"), ustr("a")),
        ustr("path"),
        ustr("a"),
        ustr("str"),
        SETITEMS,
    )


def enum_in_ordered_dict() -> bytes:
    """``OrderedDict([(Color(1), "enum"), (1, "int")])`` (kept as an OrderedDict call)."""
    return program(
        call(glob("collections", "OrderedDict")),
        MARK,
        _enum("mypkg.colors", "Color", binint1(1)),
        ustr("enum"),
        binint1(1),
        ustr("int"),
        SETITEMS,
    )


def enum_in_set() -> bytes:
    """``{"s": {Color("a"), "a"}}``: set elements that become equal."""
    return program(
        EMPTY_DICT,
        ustr("s"),
        b"\x8f",  # EMPTY_SET
        MARK,
        _enum("mypkg.colors", "Color", ustr("a")),
        ustr("a"),
        b"\x90",  # ADDITEMS
        SETITEM,
        protocol=4,
    )


COLLISIONS = {
    "enum-and-value": enum_key_and_value,
    "dtype-and-name": dtype_key_and_name,
    "global-and-name": global_key_and_name,
    "path-and-str": path_key_and_str,
    "ordered-dict-enum": enum_in_ordered_dict,
    "set-enum": enum_in_set,
}


def long_key_paths(depth: int, n: int, key_len: int, *, enum_at_bottom: bool = False) -> bytes:
    """``{K: {K: ... {K: [E] * n}}}``, ``depth`` dicts deep, ``K`` one ``key_len``-character
    string (fetched from the memo: two bytes per use) and ``E`` one shared empty list (or an
    Enum member, whose original type convert records under a path ``depth * key_len`` long).
    A converter that builds each child's path text does ``n * depth * key_len`` work."""
    parts = [EMPTY_DICT, ustr("k" * key_len), binput(0)]
    for _ in range(depth):
        parts += [EMPTY_DICT, binget(0)]
    if enum_at_bottom:
        parts += [call(glob("mypkg.colors", "Color"), binint1(1))]
    else:
        parts += [EMPTY_LIST]
    parts += [binput(1), POP, EMPTY_LIST, MARK, *[binget(1)] * n, b"e"]
    parts += [SETITEM] * (depth + 1)
    return program(*parts)


def shared_config(depth: int) -> bytes:
    """``{"cfg": DictConfig}`` whose ``_content`` is ``D[depth]``, ``D[i+1] = {"a": D[i],
    "b": D[i]}``: omegaconf content, which convert unwraps on its own path."""
    parts = [EMPTY_DICT, ustr("x"), binint1(1), SETITEM, binput(0), POP]
    for i in range(depth):  # the configs' content, built first
        parts += [EMPTY_DICT, binput(i + 1), MARK, ustr("a"), binget(i), ustr("b"), binget(i)]
        parts += [SETITEMS, POP]
    cfg = call(glob("omegaconf.dictconfig", "DictConfig"))
    state = EMPTY_DICT + ustr("_content") + binget(depth) + SETITEM
    return program(*parts, EMPTY_DICT, ustr("cfg"), cfg, state, b"b", SETITEM)
