"""An ArgumentParser whose help formatter does not import shutil (start-up time).

argparse builds a HelpFormatter for every add_argument call, and HelpFormatter imports shutil
(and with it bz2, lzma, fnmatch, ...) to ask for the terminal width: several milliseconds of
every ckptguard run. The formatter here asks os directly. Subparsers inherit the class.
"""

from __future__ import annotations

import argparse
import os
import sys


def _terminal_width() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class Formatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_width() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


_VARIANTS: dict[type, type] = {argparse.HelpFormatter: Formatter}


def _variant(cls: type) -> type:
    """``cls`` (e.g. RawDescriptionHelpFormatter) with :class:`Formatter`'s width lookup."""
    if cls not in _VARIANTS:
        _VARIANTS[cls] = type(cls.__name__, (Formatter, cls), {})
    return _VARIANTS[cls]


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose formatter classes (default or argparse's own, as subcommands pass
    them) get :class:`Formatter`'s width lookup; subparsers inherit the class."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        cls = kwargs.get("formatter_class", argparse.HelpFormatter)
        if isinstance(cls, type) and cls.__module__ == "argparse":
            kwargs["formatter_class"] = _variant(cls)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
