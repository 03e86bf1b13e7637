"""Writing a finished report where the user asked for it (shared by the subcommands)."""

from __future__ import annotations

import sys


def write_text(text: str, target: str, what: str) -> None:
    """Write ``text`` to the file ``target``, or to stdout when it is ``-``."""
    if target == "-":
        sys.stdout.write(text)
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
