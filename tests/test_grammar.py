"""Messages use "an" before a vowel sound: "an argparse.Namespace", never "a argparse.Namespace"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard._grammar import a_or_an


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("argparse.Namespace", "an argparse.Namespace"),
        ("object", "an object"),
        ("int", "an int"),
        ("Enum", "an Enum"),
        ("uint8", "a uint8"),
        ("dict", "a dict"),
        ("8-byte", "an 8-byte"),
        ("11-item", "an 11-item"),
        ("18-byte", "an 18-byte"),
        ("100-item", "a 100-item"),
        ("180-byte", "a 180-byte"),
        ("", "a "),
    ],
)
def test_article(word: str, expected: str) -> None:
    assert a_or_an(word) == expected


def test_save_checkpoint_refusal_says_an_argparse_namespace(tmp_path: Path) -> None:
    import argparse

    from ckptguard.training import save_checkpoint

    with pytest.raises(Exception, match=r"it is an argparse\.Namespace object") as info:
        save_checkpoint(tmp_path / "c.pt", args=argparse.Namespace(lr=0.1))
    assert "a argparse" not in str(info.value)


def test_no_message_in_the_source_writes_a_before_a_vowel() -> None:
    """A literal "a " before a run-time name is spelled with a_or_an, in every module."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "ckptguard"
    bad = []
    pattern = re.compile(r"""f["'][^"']*\ba \{""")
    for path in src.rglob("*.py"):
        if "_inspect" in path.parts:  # owned by the inspect work (reported, not changed here)
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "internal:" not in line:
                bad.append(f"{path.relative_to(src)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)
