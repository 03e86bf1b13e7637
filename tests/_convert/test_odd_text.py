"""Keys a pickle can hold but Unicode cannot (lone surrogates: CPython decodes pickle text with
surrogatepass) and control characters convert without a crash and come back exactly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from ckptguard._convert import read_safetensors_checkpoint
from ckptguard._convert._pipeline import convert_file
from ckptguard._policy import default_policy

KEYS = ["a\ud800", "\udc80x", "\x1b[2J\r\nverdict: safe", "\u202eright-to-left", "a\\ud800"]


@pytest.mark.parametrize("to", ["pt", "safetensors"])
def test_odd_keys_round_trip(tmp_path: Path, to: str) -> None:
    obj: dict[str, Any] = {k: {"w": torch.full((2,), float(i)), "n": i} for i, k in enumerate(KEYS)}
    src = tmp_path / "src.pt"
    torch.save(obj, src)
    dst = tmp_path / f"out.{to}"
    convert_file(str(src), str(dst), to=to, policy=default_policy())
    back: Any = (
        torch.load(dst, weights_only=True) if to == "pt" else read_safetensors_checkpoint(str(dst))
    )
    assert list(back) == KEYS
    for i, k in enumerate(KEYS):
        assert back[k]["n"] == i and torch.equal(back[k]["w"], obj[k]["w"])
    assert sorted(os.listdir(tmp_path)) == sorted(["src.pt", dst.name])
