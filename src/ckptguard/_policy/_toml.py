"""Parsing TOML: the fast subset parser for the shipped data files, and ``tomllib`` (imported
only when a file outside the subset is read) for everything else.

Kept apart from :mod:`._data` (the shipped data, read through a cache: this module is imported
only when the cache misses) and :mod:`._discovery` (policy files), which both parse TOML, so
that neither imports the other.
"""

from __future__ import annotations

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
