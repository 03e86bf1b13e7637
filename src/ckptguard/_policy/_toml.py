"""TOML for ckptguard: the fast subset parser and cache for the shipped data files, and
``tomllib`` (imported only when a file outside the subset is read) for everything else.

Kept apart from :mod:`._data` (which builds the shipped policy) and :mod:`._discovery` (which
finds policy files), which both read TOML, so that neither imports the other.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys

from ckptguard._errors import PolicyError

TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any


def parse_toml(raw: bytes, path: str) -> dict[str, Any]:
    """``raw`` as a TOML document (tomllib, imported only when a file is read); a
    :class:`PolicyError` naming ``path`` when it is not valid TOML."""
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # noqa: PLC0415
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: invalid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from None


def parse_simple_toml(text: str) -> dict[str, Any] | None:
    """Parse the subset of TOML the shipped data files are written in, quickly; None otherwise.

    The subset: blank lines, ``#`` comments, ``[dotted.table]`` headers,
    ``"key" = "value"`` / ``key = "value"`` lines, and ``key = [`` followed by one
    ``"value",`` per line and a closing ``]``; strings hold no quote or backslash. It saves
    importing and running ``tomllib`` at every start (a test checks that it agrees with
    ``tomllib`` on every shipped file); anything outside the subset returns None and the
    caller falls back to ``tomllib``.
    """
    doc: dict[str, Any] = {}
    table = doc
    items: list[str] | None = None  # the open multi-line array, if any
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "\\" in line:
            return None
        if items is not None:
            if line == "]":
                items = None
            elif line.count('"') == 2 and line.startswith('"') and line.endswith('",'):
                items.append(line[1:-2])
            else:
                return None
            continue
        if line.startswith("["):
            if not line.endswith("]") or line.startswith("[["):
                return None
            table = doc
            for part in line[1:-1].split("."):
                nxt = table.setdefault(part.strip(), {})
                if not isinstance(nxt, dict) or not part.strip().isidentifier():
                    return None
                table = nxt
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            return None
        if key.startswith('"'):
            if key.count('"') != 2 or not key.endswith('"'):
                return None
            key = key[1:-1]
        elif not key.replace("_", "a").isalnum():
            return None
        if key in table:
            return None
        if value == "[":
            items = table[key] = []
            continue
        if value.count('"') != 2 or not (value[0] == value[-1] == '"'):
            return None
        table[key] = value[1:-1]
    return None if items is not None else doc


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
    doc = parse_simple_toml(text)
    if doc is None:  # pragma: no cover - the shipped file is kept inside the subset
        doc = parse_toml(text.encode("utf-8"), path)
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
