"""JSON text for every machine-readable output (scan/code JSON and SARIF, inspect, convert).

Two rules, applied to the whole text after :func:`json.dumps` (JSON's own syntax is ASCII, so
every character they touch sits inside a string):

* **No control characters.** Every character ``str.isprintable()`` rejects (C1 controls, DEL,
  bidi embeddings/overrides/isolates, line/paragraph separators, zero-width and private-use
  characters...) is written as a JSON escape (``\\u202e``; a pair of escapes beyond the BMP).
  JSON escapes C0 controls itself. The parsed value is unchanged; the text is safe to ``cat``.
* **Lone surrogates.** CPython decodes a pickle's text with ``surrogatepass``, so a global's
  name can contain U+D800-U+DFFF on its own. Written raw, such text is not UTF-8 (the write
  fails); written as a ``\\udc80`` JSON escape it parses back to text that no Unicode-strict
  reader accepts. ckptguard writes each lone surrogate as the six characters ``\\udc80`` (a
  backslash, ``u`` and four lower-case hex digits, the way Python's ``backslashreplace`` error
  handler spells it), i.e. JSON ``"\\\\udc80"``: deterministic, valid UTF-8 and valid Unicode.
  Two surrogates that would form a pair are written the same way, each on its own.

Non-finite floats (``NaN``, ``Infinity``: not JSON) are written as strings (``"nan"``,
``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import json
import math
import re

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

# anything but printable ASCII and the newlines of indented output
_SUSPECT = re.compile("[^\n\x20-\x7e]")


def _spell(m: re.Match[str]) -> str:
    c = m.group()
    n = ord(c)
    if 0xD800 <= n <= 0xDFFF:
        return f"\\\\u{n:04x}"
    if c.isprintable():
        return c
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def _finite(v: Any) -> Any:
    if type(v) is float and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def dumps(doc: Any, *, indent: int | None = 2) -> str:
    """``doc`` as JSON text that encodes to UTF-8, holds no control character and parses back
    (``json.loads``) for any ``str`` in it."""
    try:
        text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere
        text = json.dumps(_finite(doc), indent=indent, ensure_ascii=False, allow_nan=False)
    if text.isascii() and "\x7f" not in text:
        return text
    return _SUSPECT.sub(_spell, text)
