"""What terminal-safe and JSON-safe output means, as checks shared by the hygiene tests."""

from __future__ import annotations

import json

from ckptguard._reporters._terminal import _RESET, _SGR

_OWN_CODES = sorted({*_SGR.values(), _RESET}, key=len, reverse=True)


def terminal_problems(text: str, *, color: bool = False) -> list[str]:
    """Characters in ``text`` a terminal would act on, other than newlines (and, with
    ``color``, ckptguard's own colour codes)."""
    if color:
        for code in _OWN_CODES:
            text = text.replace(code, "")
    return [repr(c) for c in text if c != "\n" and not c.isprintable()]


def json_problems(text: str) -> list[str]:
    """Why ``text`` is not a valid, Unicode-clean, control-free JSON document ([] if it is)."""
    problems: list[str] = []
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return [f"not UTF-8: {exc}"]
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    problems += [f"control character {c!r}" for c in text if c != "\n" and not c.isprintable()]

    def walk(v: object) -> None:
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"parsed string is not valid Unicode: {v!r}")
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    return problems
