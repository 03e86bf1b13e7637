"""restore_rng_state checks every part before changing any generator, and refuses states no
generator produces: degenerate (all-zero) Mersenne Twister states, words past 32 bits, torch
positions that would read past its state array, non-finite cached samples, bad Philox offsets.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from ckptguard import CorruptCheckpointError
from ckptguard.training import capture_rng_state, restore_rng_state

# torch 2.x CPUGeneratorImplState: seed u64, left i32, seeded i32, next u64, 624 u64 words,
# normal_x/_y/_rho f64, normal_is_valid i32, 4 pad, next_float_normal_sample f32, valid u8, 3 pad
LEFT, SEEDED, NEXT, WORDS = 8, 12, 16, 24
NORMAL_X, NORMAL_RHO, NORMAL_VALID = 24 + 624 * 8, 24 + 624 * 8 + 16, 24 + 624 * 8 + 24
FLOAT_SAMPLE, FLOAT_VALID = 5048, 5052


def snapshot() -> tuple[Any, ...]:
    return (random.getstate(), np.random.get_state()[1].copy(), np.random.get_state()[2],
            torch.get_rng_state())  # fmt: skip


def assert_unchanged(before: tuple[Any, ...]) -> None:
    now = snapshot()
    assert now[0] == before[0], "random changed"
    assert (now[1] == before[1]).all() and now[2] == before[2], "numpy changed"
    assert torch.equal(now[3], before[3]), "torch changed"


def other_state() -> dict[str, Any]:
    """A valid, different capture: restoring it would change every generator."""
    before = capture_rng_state()
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    torch.rand(7)
    state = capture_rng_state()
    restore_rng_state(before)
    return state


def torch_bytes(edit: Callable[[bytearray], None]) -> torch.Tensor:
    raw = bytearray(bytes(torch.Generator().manual_seed(5).get_state().tolist()))
    edit(raw)
    return torch.tensor(list(raw), dtype=torch.uint8)


def put(fmt: str, offset: int, value: object) -> Callable[[bytearray], None]:
    return lambda raw: struct.pack_into(fmt, raw, offset, value)


def zero_words(raw: bytearray) -> None:
    raw[WORDS : WORDS + 624 * 8] = bytes(624 * 8)


CORRUPT_TORCH: dict[str, tuple[Callable[[bytearray], None], str]] = {
    "all-zero-mt": (zero_words, "degenerate.*all zero"),
    "left-zero": (put("<i", LEFT, 0), "left=0"),
    "left-past-state": (put("<i", LEFT, 625), "left=625"),
    "reads-past-the-array": (
        lambda raw: (put("<i", LEFT, 624)(raw), put("<Q", NEXT, 624)(raw)),
        "left=624, next=624.*read past",
    ),
    "not-seeded": (put("<i", SEEDED, 0), "'seeded' is 0"),
    "word-over-32-bits": (put("<Q", WORDS + 8 * 5, 2**40), "word 5 is 1099511627776"),
    "bool-flag-2": (put("<B", FLOAT_VALID, 2), "flags must be 0 or 1"),
    "nan-float-sample": (
        lambda raw: (put("<f", FLOAT_SAMPLE, math.nan)(raw), put("<B", FLOAT_VALID, 1)(raw)),
        "finite",
    ),
    "inf-normal-rho": (
        lambda raw: (put("<d", NORMAL_RHO, math.inf)(raw), put("<i", NORMAL_VALID, 1)(raw)),
        "normal_rho must be a finite",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_TORCH))
def test_a_corrupt_torch_part_changes_no_generator(name: str) -> None:
    edit, match = CORRUPT_TORCH[name]
    state = {**other_state(), "torch": torch_bytes(edit)}
    before = snapshot()
    with pytest.raises(CorruptCheckpointError, match=f"'torch'.*{match}") as info:
        restore_rng_state(state)
    assert info.value.hint and "capture_rng_state" in info.value.hint
    assert_unchanged(before)


def test_torch_itself_accepts_what_reads_past_its_state() -> None:
    """Why ckptguard checks left + next: torch's own check lets this through."""
    bad = torch_bytes(lambda raw: (put("<i", LEFT, 624)(raw), put("<Q", NEXT, 624)(raw)))
    torch.Generator().set_state(bad)  # accepted by torch (never drawn from here)
    with pytest.raises(CorruptCheckpointError, match="read past"):
        restore_rng_state({"torch": bad})


def test_all_zero_states_are_live_in_the_stock_generators() -> None:
    """The degenerate class is real: CPython and numpy accept an all-zero state, then return
    only zeros."""
    r = random.Random()
    r.setstate((3, (0,) * 624 + (624,), None))
    assert [r.random() for _ in range(5)] == [0.0] * 5
    rs = np.random.RandomState()
    rs.set_state(("MT19937", np.zeros(624, np.uint32), 624, 0, 0.0))
    assert (rs.random_sample(5) == 0).all()


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("python", (3, (0,) * 624 + (624,), None)),
        ("python", {"version": 3, "state": [0] * 624 + [0], "gauss": None}),
        ("python", (3, (0x7FFFFFFF,) + (0,) * 623 + (624,), None)),  # low bits of word 0 only
        ("numpy", ("MT19937", np.zeros(624, np.uint32), 624, 0, 0.0)),
        ("numpy", ("MT19937", [0] * 624, 0)),
        (
            "numpy",
            {"bit_generator": "MT19937", "state": {"key": np.zeros(624, np.uint32), "pos": 1}},
        ),
        ("torch", torch_bytes(zero_words)),
    ],
)
def test_degenerate_states_are_refused_with_a_clear_error(part: str, value: object) -> None:
    state = {**other_state(), part: value}
    before = snapshot()
    with pytest.raises(CorruptCheckpointError, match=f"'{part}'.*degenerate") as info:
        restore_rng_state(state)
    text = info.value.diagnostics()
    assert "only zeros" in text and "capture_rng_state" in text and "manual_seed" in text
    assert_unchanged(before)


def test_top_bit_of_word_0_alone_is_a_valid_state() -> None:
    """CPython's own seeding sets word 0 to 0x80000000: not degenerate."""
    words = (0x80000000,) + (0,) * 623
    restore_rng_state({"python": (3, (*words, 624), None)})
    assert random.getstate()[1][:624] == words
    assert random.random() != random.random()


@pytest.mark.parametrize(
    ("part", "value", "match"),
    [
        ("python", (3, (2**32,) + (1,) * 623 + (624,), None), "word 0 is 4294967296"),
        ("python", (3, (1,) * 623 + (-1,) + (624,), None), "word 623 is -1"),
        ("python", (3, (1,) * 624 + (625,), None), "position must be in 0..624"),
        ("python", (3, (1,) * 624, None), "wrong size"),
        ("python", (3, (1,) * 624 + (624,), math.nan), "gauss must be a finite"),
        ("python", (4, (1,) * 624 + (624,), None), "random.setstate rejects"),
        ("numpy", ("MT19937", [1] * 624, 624, 1, math.inf), "cached_gaussian must be a finite"),
        ("numpy", ("MT19937", [2**32] * 624, 624), "unsigned 32-bit"),
        ("cuda", [torch.tensor(list(struct.pack("<Qq", 1, 6)), dtype=torch.uint8)], "offset 6"),
        ("cuda", [torch.tensor(list(struct.pack("<Qq", 1, -4)), dtype=torch.uint8)], "offset -4"),
        ("cuda", [torch.zeros(12, dtype=torch.uint8)], "12 bytes, expected 16"),
    ],
)
def test_out_of_range_parts_change_no_generator(part: str, value: object, match: str) -> None:
    """Checked even where the part would not be restored (CUDA states on a CPU machine)."""
    state = {**other_state(), part: value}
    before = snapshot()
    with pytest.raises(CorruptCheckpointError, match=f"'{part}'.*{match}"):
        restore_rng_state(state)
    assert_unchanged(before)


def test_cpython_would_truncate_a_word_silently() -> None:
    """Liveness of the out-of-range class: CPython takes 2**32 + 5 as 5, no error."""
    r = random.Random()
    r.setstate((3, (2**32 + 5,) + (1,) * 623 + (624,), None))
    assert r.getstate()[1][0] == 5


def test_a_failure_while_setting_puts_back_what_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch that refuses more than ckptguard checks: the generators set before it are
    restored, so the call still changes nothing."""
    state = other_state()
    before = snapshot()

    def refuse(new_state: torch.Tensor) -> None:
        raise RuntimeError("a check this torch adds")

    real = torch.set_rng_state
    monkeypatch.setattr(torch, "set_rng_state", refuse)
    with pytest.raises(CorruptCheckpointError, match=r"nothing changed.*a check this torch adds"):
        restore_rng_state(state)
    monkeypatch.setattr(torch, "set_rng_state", real)
    assert_unchanged(before)


def test_valid_states_in_every_position_restore() -> None:
    """Fresh generators (left=1, next=0) and generators part-way through a block."""
    for draws in (0, 1, 623, 624, 625, 5000):
        g = torch.Generator().manual_seed(draws)
        if draws:
            torch.rand(draws, generator=g)
        state = g.get_state()
        expected = torch.rand(4, generator=g)
        restore_rng_state({"torch": state})
        assert torch.equal(torch.rand(4), expected)


def test_mutated_torch_states_are_refused_whole_or_restored() -> None:
    """Byte flips anywhere in a real state (and in the fields torch reads): either refused
    with nothing changed, or restored together with the other parts."""
    rng = random.Random(10)
    base = bytes(torch.Generator().manual_seed(3).get_state().tolist())
    fields = [LEFT, SEEDED, NEXT, NORMAL_VALID, FLOAT_VALID, WORDS, WORDS + 4]
    python = random.Random(1).getstate()
    refused = 0
    for _ in range(300):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            pos = rng.choice(fields) + rng.randrange(2) if rng.random() < 0.5 else None
            raw[rng.randrange(len(raw)) if pos is None else pos] = rng.randrange(256)
        before = snapshot()
        try:
            restore_rng_state(
                {"python": python, "torch": torch.tensor(list(raw), dtype=torch.uint8)}
            )
        except CorruptCheckpointError:
            refused += 1
            assert_unchanged(before)
        else:
            assert random.getstate() == python
    assert 0 < refused < 300
