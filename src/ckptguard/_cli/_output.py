"""Writing what the CLI shows (shared by the subcommands): the CLI's one way out.

Human text is built as lines by the renderers and made terminal-safe by
:func:`ckptguard._reporters._terminal.lines_to_text` (every string from a file escaped, only the
renderer's own newlines and colours left). Machine-readable documents are written by
:mod:`ckptguard._reporters._jsontext` (valid UTF-8 JSON for any string). Errors are printed by
:func:`print_error` from their parts (path, problem, hint), escaped the same way.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any, TextIO

    from ckptguard._errors import Error


_ERRORS = "ckptguard.escape"


def _escape_unencodable(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each character the stream cannot encode as ``\\uXXXX`` (a pair of
    them beyond the BMP). That is valid inside a JSON string (the only place our JSON has
    non-ASCII characters) and readable in human text, which never holds a raw backslash
    escape of its own meaning."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out: list[str] = []
    for c in exc.object[exc.start : exc.end]:
        n = ord(c)
        if n < 0x10000:
            out.append(f"\\u{n:04x}")
        else:
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
    return "".join(out), exc.end


def escape_unencodable(stream: TextIO) -> None:
    """Make ``stream`` write what its encoding cannot spell (a latin-1 or ASCII locale) as
    ``\\uXXXX`` escapes instead of failing: every output then stays valid (JSON parses,
    SARIF to stdout too) and nothing crashes."""
    import codecs  # noqa: PLC0415

    try:
        codecs.lookup_error(_ERRORS)
    except LookupError:
        codecs.register_error(_ERRORS, _escape_unencodable)
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is None:
        return
    try:
        reconfigure(errors=_ERRORS)
    except (ValueError, OSError):  # a closed or odd stream
        return


def write(stream: TextIO, text: str) -> None:
    """Write finished text to ``stream``. A stream whose encoding cannot spell a character
    (a latin-1 or ASCII terminal) gets ``\\uXXXX`` escapes instead of a crash."""
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a stream escape_unencodable could not set up
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, _ERRORS).decode(encoding))


def write_lines(stream: TextIO, lines: list[str]) -> None:
    """Human lines (strings from files included: they are escaped here), one per line."""
    from ckptguard._reporters._terminal import lines_to_text  # noqa: PLC0415

    write(stream, lines_to_text(lines))


def write_json(doc: Any, stream: TextIO | None = None, *, indent: int | None = 2) -> None:
    from ckptguard._reporters._jsontext import dumps  # noqa: PLC0415

    write(stream or sys.stdout, dumps(doc, indent=indent) + "\n")


def error_lines(exc: Error, prefix: str = "ckptguard: error: ") -> list[str]:
    """What went wrong (with the file, when the error names one) and the hint, as lines."""
    path = getattr(exc, "path", None)
    head = f"{path}: {exc.problem}" if path else exc.problem
    lines = [prefix + head]
    if exc.hint:
        lines.append(f"  hint: {exc.hint}")
    return lines


def print_error(exc: Error, prefix: str = "ckptguard: error: ") -> None:
    write_lines(sys.stderr, error_lines(exc, prefix))


def write_text(text: str, target: str, what: str) -> None:
    """Write ``text`` to the file ``target``, or to stdout when it is ``-``."""
    if target == "-":
        write(sys.stdout, text)
        return
    try:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        from ckptguard._errors import UsageError  # noqa: PLC0415

        raise UsageError(
            f"cannot write the {what} to {target}: {exc.strerror or exc}",
            hint="check that the directory exists and is writable",
        ) from None
