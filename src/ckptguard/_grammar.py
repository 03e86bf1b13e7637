"""English for messages: the indefinite article before a name that is only known at run time."""

from __future__ import annotations

_VOWELS = "aeiouAEIOU"
# Words spelled with a leading vowel letter but said with a consonant sound ("a uint8").
_CONSONANT_SOUND = ("uint", "uni", "use", "usu", "utf", "one", "eu")


def article(word: str) -> str:
    """``"a"`` or ``"an"`` for ``word`` as it is read aloud (``an argparse.Namespace``,
    ``a uint8``, ``an 8-byte``, ``an 11-item``, ``a 100-item``)."""
    if not word:
        return "a"
    if word[0].isdigit():
        digits = ""
        for c in word:
            if not c.isdigit():
                break
            digits += c
        eight = digits[0] == "8"
        eleven = len(digits) % 3 == 2 and digits[:2] in ("11", "18")
        return "an" if eight or eleven else "a"
    if word.lower().startswith(_CONSONANT_SOUND):
        return "a"
    return "an" if word[0] in _VOWELS else "a"


def a_or_an(word: str) -> str:
    """``word`` with its article: ``a_or_an("argparse.Namespace") == "an argparse.Namespace"``."""
    return f"{article(word)} {word}"
