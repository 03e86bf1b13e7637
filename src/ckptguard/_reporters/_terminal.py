"""The one place where text meant for a person becomes terminal-safe.

Every human output of ckptguard (the scan and code reports, ``inspect``, ``convert``'s lines,
error messages) is built as a list of lines and turned into text by :func:`lines_to_text`.
Inside a line everything a file could have put there is escaped: C0 and C1 controls, DEL,
escape sequences, bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069), line and
paragraph separators, lone surrogates, private-use and unassigned code points and every other
character ``str.isprintable()`` rejects (``\\x1b``, ``\\u202e``, ``\\udc80``). A newline inside a
line is escaped too (``\\n``): only the renderer's own line breaks reach the terminal, so a dict
key cannot forge a line such as ``verdict: safe``.

Colour is the renderer's own: :func:`style` wraps text in markers that carry a random token
drawn when this module is imported. :func:`lines_to_text` turns well-formed markers into SGR
codes; a file cannot spell a marker, since it does not know the token (and a marker's
characters are private-use code points, which are escaped wherever they do not form one).
"""

from __future__ import annotations

import os
import re

_SGR = {
    "safe": "\x1b[32m",  # green
    "allowed": "\x1b[32m",
    "review": "\x1b[33m",  # yellow
    "unknown": "\x1b[33m",
    "warning": "\x1b[33m",
    "dangerous": "\x1b[1;31m",  # bold red
    "error": "\x1b[1;35m",  # bold magenta
    "info": "\x1b[2m",  # dim
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
_RESET = "\x1b[0m"
_NAMES = (*_SGR, "reset")

# A marker: U+F0000 (plane 15, private use), 8 random private-use code points, the style's
# index as a private-use code point, U+F0001. Drawn once per process from os.urandom.
_TOKEN = "".join(chr(0xF0100 + b) for b in os.urandom(8))
_OPEN, _CLOSE = "\U000f0000", "\U000f0001"
_MARK = {name: f"{_OPEN}{_TOKEN}{chr(0xF0010 + i)}{_CLOSE}" for i, name in enumerate(_NAMES)}
_BY_MARK = {mark: name for name, mark in _MARK.items()}
_MARK_RE = re.compile(re.escape(_OPEN + _TOKEN) + "[\U000f0010-\U000f00ff]" + re.escape(_CLOSE))


def style(text: str, name: str) -> str:
    """``text`` in the style ``name`` (a verdict, severity, ``bold`` or ``dim``); unknown
    styles leave it plain."""
    if name not in _SGR:
        return text
    return f"{_MARK[name]}{text}{_MARK['reset']}"


def escape_char(c: str) -> str:
    """``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` for one character."""
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def escape(text: str) -> str:
    """``text`` with every character that is not printable escaped (newlines included)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else escape_char(c) for c in text)


def _line(line: str, color: bool) -> str:
    if _OPEN not in line:
        return escape(line)
    out: list[str] = []
    at = 0
    for m in _MARK_RE.finditer(line):
        out.append(escape(line[at : m.start()]))
        if color:
            name = _BY_MARK.get(m.group())
            if name is not None:
                out.append(_SGR.get(name, _RESET))
            else:  # a marker-shaped sequence with an unknown style: not ours
                out.append(escape(m.group()))
        at = m.end()
    out.append(escape(line[at:]))
    return "".join(out)


def lines_to_text(lines: list[str], *, color: bool = True) -> str:
    """The lines as terminal-safe text, each ended by a newline; markers become SGR codes
    (or nothing, with ``color=False``)."""
    return "".join(_line(line, color) + "\n" for line in lines)
