"""The output layer: every character a file could use against a terminal is escaped in ONE place
(ckptguard._reporters._terminal), and colour cannot be forged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard._reporters import _terminal as T
from ckptguard._reporters._human import _Painter
from tests._reporters.textcheck import terminal_problems

DANGEROUS_CHARS = [
    *(chr(c) for c in range(0x20) if c != 0x0A),  # C0 (newline is tested on its own)
    "\x7f",  # DEL
    *(chr(c) for c in range(0x80, 0xA0)),  # C1, including CSI U+009B and NEL U+0085
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u200b",  # zero width space
    "\u200f",  # right-to-left mark
    "\ufeff",  # zero width no-break space
    "\ud800",  # lone surrogates
    "\udfff",
    "\udc80",
    "\ue000",  # private use
    "\U000f0000",  # private use, plane 15 (the marker's own characters)
    "\U000f0001",
]


@pytest.mark.parametrize("c", DANGEROUS_CHARS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_dangerous_character_is_escaped(c: str) -> None:
    text = T.lines_to_text([f"key{c}end"])
    assert text.endswith("\n") and text.count("\n") == 1
    assert terminal_problems(text) == []
    assert text.startswith("key\\") and text.rstrip("\n").endswith("end")


def test_a_newline_inside_a_line_cannot_forge_another_line() -> None:
    text = T.lines_to_text(["model.pt  verdict: dangerous", "  key\nverdict: safe"])
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[1] == "  key\\x0averdict: safe"


def test_printable_text_stays_as_it_is() -> None:
    line = "poids.pt  modèle 模型 ñ — 👍 ~/a b/'c'"
    assert T.lines_to_text([line]) == line + "\n"


def test_escape_spells_each_code_point() -> None:
    assert T.escape("\x1b") == "\\x1b"
    assert T.escape("\u202e") == "\\u202e"
    assert T.escape("\ud800") == "\\ud800"
    assert T.escape("\U000e0001") == "\\U000e0001"


def test_colour_comes_only_from_the_renderers_markers() -> None:
    painted = _Painter(True)("dangerous", "dangerous")
    assert T.lines_to_text([painted]) == "\x1b[1;31mdangerous\x1b[0m\n"
    assert T.lines_to_text([painted], color=False) == "dangerous\n"
    assert _Painter(False)("x", "dangerous") == "x"


def test_a_file_cannot_spell_a_colour_marker() -> None:
    # what an attacker with the source can write: the marker's shape with a guessed token
    guessed = "\U000f0000" + "\U000f0100" * 8 + "\U000f0010" + "\U000f0001"
    text = T.lines_to_text([f"{guessed}verdict: safe"])
    assert "\x1b" not in text
    assert terminal_problems(text) == []
    # and raw SGR codes in a name are escaped even when colour is on
    text = T.lines_to_text([T.style("x", "bold") + "\x1b[32mSAFE\x1b[0m"])
    assert text == "\x1b[1mx\x1b[0m\\x1b[32mSAFE\\x1b[0m\n"


def test_unknown_styles_leave_text_plain() -> None:
    assert T.style("x", "no-such-style") == "x"


_any_char = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.integers(0xF0000, 0xF01FF).map(chr),  # the markers' own plane
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_any_char, max_size=20), max_size=5), st.booleans())
def test_any_lines_give_exactly_their_own_line_breaks(lines: list[str], color: bool) -> None:
    styled = [T.style(line, "bold") if i % 2 else line for i, line in enumerate(lines)]
    text = T.lines_to_text(styled, color=color)
    assert text.count("\n") == len(lines)
    assert terminal_problems(text, color=color) == []
    text.encode("utf-8")  # no lone surrogate left
