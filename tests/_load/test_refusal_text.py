"""A refusal's text keeps its own line breaks (one global per line) and escapes the file's."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptguard
from tests.pickleasm import EMPTY_DICT, POP, program, sglobal


def test_refusal_lists_one_global_per_line_and_escapes_names_from_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.pkl"
    # two unknown globals, one whose name carries a line break and an escape sequence
    path.write_bytes(
        program(
            sglobal("mypkg.mod", "Good"),
            POP,
            sglobal("mypkg.mod", "Bad\n  - ok: safe\x1b[2K"),
            POP,
            EMPTY_DICT,
            protocol=4,
        )
    )
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(path)
    text = str(info.value)
    lines = text.split("\n")
    assert any(line.startswith("  - mypkg.mod.Good: unknown") for line in lines), text
    bad = [line for line in lines if "mypkg.mod.Bad" in line]
    assert len(bad) == 1 and "\\x0a  - ok: safe\\x1b[2K" in bad[0], text
    assert not any(line.startswith("  - ok: safe") for line in lines), text
    assert "\x1b" not in text
