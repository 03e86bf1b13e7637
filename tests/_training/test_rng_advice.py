"""restore_rng_state(ckpt) on a whole checkpoint: the advice it gives must work when followed.

The user's situation: a training script saved ``np.random.get_state()`` under ``numpy_rng``
(and torch's and Python's states under their own keys), loads the checkpoint with
ckptguard.load and calls ``restore_rng_state(ckpt)``. The hint used to suggest
``restore_rng_state(ckpt['numpy_rng'])``, which then failed (a bare state is not a dict).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ckptguard
from ckptguard.training import restore_rng_state


def _follow(hint: str, ckpt: dict[str, Any]) -> None:
    call = hint.split(": ", 1)[1]
    assert call.startswith("restore_rng_state(")
    eval(call, {"restore_rng_state": restore_rng_state, "ckpt": ckpt})


def test_advice_for_bare_states_works_on_a_real_resume(tmp_path: Path) -> None:
    np.random.seed(1)
    torch.manual_seed(2)
    random.seed(3)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "model": torch.nn.Linear(2, 2).state_dict(),
            "epoch": 3,
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        },
        path,
    )
    expected = (np.random.rand(), torch.rand(1).item(), random.random())
    np.random.seed(99)
    torch.manual_seed(99)
    random.seed(99)
    ckpt = ckptguard.load(path)
    with pytest.raises(ckptguard.CheckpointError) as info:
        restore_rng_state(ckpt)
    hint = info.value.hint or ""
    assert "ckpt['numpy_rng']" in hint and "'numpy':" in hint
    _follow(hint, ckpt)  # the advice, followed as written, restores every generator
    assert (np.random.rand(), torch.rand(1).item(), random.random()) == expected


def test_advice_for_a_nested_dict_of_states_passes_it_whole(tmp_path: Path) -> None:
    np.random.seed(5)
    ckpt: dict[str, Any] = {"model": {}, "rng_states": {"numpy": np.random.get_state()}}
    expected = np.random.rand()
    np.random.seed(0)
    with pytest.raises(ckptguard.CheckpointError) as info:
        restore_rng_state(ckpt)
    hint = info.value.hint or ""
    assert "restore_rng_state(ckpt['rng_states'])" in hint
    _follow(hint, ckpt)
    assert np.random.rand() == expected


def test_no_rng_keys_gives_the_capture_advice() -> None:
    with pytest.raises(ckptguard.CheckpointError) as info:
        restore_rng_state({"model": {}, "epoch": 1})
    assert "capture_rng_state" in (info.value.hint or "")
