"""Loading the shipped data files (ckptguard/data/*.toml, through a cache), and the shipped
policy built from them, once per process."""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import sys
from types import MappingProxyType

from ckptguard._errors import PolicyError
from ckptguard._record import Record, set_field

TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "data"))
POLICY_FILE = os.path.join(DATA_DIR, "policy.toml")
# Written by scripts/gen_dangerous.py from the standard library's source and the installed
# packages' namespaces: the functions that reach code execution, processes, imports or files,
# and every other name under which a dangerous object is reachable. Never edited by hand.
DERIVED_FILE = os.path.join(DATA_DIR, "dangerous_derived.toml")


class ShippedData(Record):
    __slots__ = (
        "dangerous_attributes",
        "dangerous_globals",
        "dangerous_modules",
        "max_depth",
        "profiles",
        "third_party",
    )  # fmt: skip
    profiles: MappingProxyType[str, MappingProxyType[str, str]]  # profile -> name -> reason
    dangerous_modules: MappingProxyType[str, str]
    dangerous_globals: MappingProxyType[str, str]
    dangerous_attributes: MappingProxyType[str, str]
    third_party: MappingProxyType[str, str]  # top-level namespaces no wildcard may cover
    max_depth: int  # the most dotted parts of any dangerous module or global entry

    def __init__(
        self,
        *,
        profiles: MappingProxyType[str, MappingProxyType[str, str]],
        dangerous_modules: MappingProxyType[str, str],
        dangerous_globals: MappingProxyType[str, str],
        dangerous_attributes: MappingProxyType[str, str],
        third_party: MappingProxyType[str, str],
    ) -> None:
        set_field(self, "profiles", profiles)
        set_field(self, "dangerous_modules", dangerous_modules)
        set_field(self, "dangerous_globals", dangerous_globals)
        set_field(self, "dangerous_attributes", dangerous_attributes)
        set_field(self, "third_party", third_party)
        depth = max((k.count(".") + 1 for k in (*dangerous_modules, *dangerous_globals)), default=1)
        set_field(self, "max_depth", depth)


def _table(doc: dict[str, Any], *path: str, optional: bool = False) -> dict[str, str]:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None and optional:
        return {}
    if not isinstance(node, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in node.items()
    ):
        raise PolicyError(f"shipped policy.toml: [{'.'.join(path)}] must map names to reasons")
    return node


def load_shipped_toml(path: str) -> dict[str, Any]:
    """A data file shipped in the package (policy.toml, weights_only.toml) as a document,
    through a cache like Python's own.

    Parsing the file is a measurable share of a short scan's start-up, so the parsed document
    is kept in ``__pycache__/<name>.<cache tag>.marshal`` next to it, keyed by the file's size
    and modification time as ``.pyc`` files are (and written under the same rule: not when
    ``sys.dont_write_bytecode`` is set, never an error when the directory is read-only). A
    cache that is stale, unreadable or not a document of strings is ignored and rewritten.
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_size, st.st_mtime_ns)
        cache = _cache_path(path)
        doc = _read_cache(cache, key)
        if doc is not None:
            return doc
        text = f.read().decode("utf-8")
    from ckptguard._policy import _toml  # noqa: PLC0415 - parsing only on a cache miss

    doc = _toml.parse_simple_toml(text)
    if doc is None:  # pragma: no cover - the shipped file is kept inside the subset
        doc = _toml.parse_toml(text.encode("utf-8"), path)
    if not sys.dont_write_bytecode:
        _write_cache(cache, key, doc)
    return doc


def _cache_path(path: str) -> str:
    head, name = os.path.split(path)
    tag = sys.implementation.cache_tag or "python"
    return os.path.join(head, "__pycache__", f"{name}.{tag}.marshal")


def _read_cache(cache: str, key: tuple[int, int]) -> dict[str, Any] | None:
    try:
        with open(cache, "rb") as f:
            # our own file beside the package, trusted as its .pyc files are
            cached = marshal.loads(f.read())  # noqa: S302
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not (isinstance(cached, tuple) and len(cached) == 2 and cached[0] == key):
        return None
    return cached[1] if _is_document(cached[1]) else None


def _is_document(node: object) -> bool:
    """A TOML document of nested tables of strings and lists of strings (the subset)."""
    return isinstance(node, dict) and all(
        isinstance(k, str)
        and (
            isinstance(v, str)
            or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            or _is_document(v)
        )
        for k, v in node.items()
    )


def _write_cache(cache: str, key: tuple[int, int], doc: dict[str, Any]) -> None:
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((key, doc)))
        os.replace(tmp, cache)
    except OSError:  # a read-only installation: parse at every start instead
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@functools.lru_cache(maxsize=1)
def shipped() -> ShippedData:
    """The hand-written policy.toml alone: all that judging vetted (safe) globals needs."""
    return _build(load_shipped_toml(POLICY_FILE), {})


@functools.lru_cache(maxsize=1)
def shipped_all() -> ShippedData:
    """policy.toml plus the derived danger list, read only when a global is not vetted.

    No derived entry names a vetted global (the generator leaves them out and a test checks),
    so a checkpoint made only of vetted globals never pays for reading the derived file.
    """
    derived = load_shipped_toml(DERIVED_FILE) if os.path.exists(DERIVED_FILE) else {}
    return _build(load_shipped_toml(POLICY_FILE), derived)


def _build(doc: dict[str, Any], derived: dict[str, Any]) -> ShippedData:
    profiles = {
        name: MappingProxyType(_table(doc, "profiles", name, "globals"))
        for name in doc.get("profiles", {})
    }
    # Hand-written entries (and their reasons) win over derived ones of the same name.
    modules = dict(_table(derived, "dangerous", "modules", optional=True))
    modules.update(_table(doc, "dangerous", "modules"))
    dangerous = dict(_table(derived, "dangerous", "globals", optional=True))
    dangerous.update(_table(doc, "dangerous", "globals"))
    return ShippedData(
        profiles=MappingProxyType(profiles),
        dangerous_modules=MappingProxyType(modules),
        dangerous_globals=MappingProxyType(dangerous),
        dangerous_attributes=MappingProxyType(_table(doc, "dangerous", "attributes")),
        third_party=MappingProxyType(_table(doc, "namespaces", "third_party")),
    )
