"""Hostile samples from the red-team pass on the merged issue-10 product (red2).

omegaconf containers are vetted as data, but a node value that is a string holding
``${name:...}`` makes omegaconf call the resolver the *loading program* registered under that
name, with arguments from the file, when the program reads the value. Applications commonly
register ``eval`` (``OmegaConf.register_new_resolver("eval", eval)``); ``oc.env`` reads any
environment variable (secrets end up in logged hyper-parameters). Nothing here loads anything.
"""

from __future__ import annotations

from tests.pickleasm import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    NONE,
    SETITEMS,
    TUPLE,
    binbytes,
    binunicode,
    call,
    glob,
    program,
)

RESOLVER = "ev"  # the resolver the liveness app registers (stands for a real app's "eval")


def resolver_string(marker: str) -> str:
    return "${" + RESOLVER + ":" + marker + "}"


def _node(val: bytes) -> bytes:
    """An omegaconf AnyNode rebuilt as omegaconf pickles it: cls.__new__(cls) + BUILD state."""
    return (
        glob("omegaconf.nodes", "AnyNode") + EMPTY_TUPLE + NEWOBJ
        + EMPTY_DICT + MARK + binunicode("_val") + val + binunicode("_parent") + NONE
        + SETITEMS + BUILD
    )  # fmt: skip


def node_with_resolver(marker: str) -> bytes:
    """``_val`` a visible string that calls the resolver."""
    return program(_node(binunicode(resolver_string(marker))))


def node_with_nested_resolver(marker: str) -> bytes:
    """The call hidden inside a plain reference: ``${a.${ev:...}}``."""
    return program(_node(binunicode("x ${a.${" + RESOLVER + ":" + marker + "}}")))


def node_with_built_string(marker: str) -> bytes:
    """``_val`` built by a vetted call (``str(bytes, 'latin1')``): the scan cannot read it."""
    text = resolver_string(marker).encode()
    return program(_node(call(glob("builtins", "str"), binbytes(text), binunicode("latin1"))))


def node_with_plain_reference() -> bytes:
    """Benign: a reference calls no resolver."""
    return program(_node(binunicode("${model.dim}")))


def reconstructor_node_with_resolver(marker: str) -> bytes:
    """Protocol 0/1 spelling: ``copyreg._reconstructor(AnyNode, object, None)`` + BUILD."""
    node = call(
        glob("copyreg", "_reconstructor"),
        glob("omegaconf.nodes", "AnyNode"), glob("builtins", "object"), NONE,
    )  # fmt: skip
    state = EMPTY_DICT + MARK + binunicode("_val") + binunicode(resolver_string(marker))
    return program(node + state + SETITEMS + BUILD, protocol=1)


def rebuild_from_type_node_with_resolver(marker: str) -> bytes:
    """The state applied by a vetted call: ``_rebuild_from_type_v2(f, AnyNode, args, state)``."""
    args = (
        MARK + glob("omegaconf.nodes", "AnyNode") + glob("builtins", "object") + NONE + TUPLE
    )  # fmt: skip
    state = EMPTY_DICT + MARK + binunicode("_val") + binunicode(resolver_string(marker)) + SETITEMS
    return program(
        call(
            glob("torch._tensor", "_rebuild_from_type_v2"),
            glob("copyreg", "_reconstructor"), glob("omegaconf.nodes", "AnyNode"), args, state,
        )
    )  # fmt: skip
