"""ckptguard.load reads what ckptguard convert writes: restore_types and safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ckptguard
from tests import factories


def _enum_and_namespace(path: Path) -> Path:
    torch.save(
        {"w": torch.arange(4.0), "mode": factories.DSPMode.INFER,
         "args": argparse.Namespace(lr=0.1, arch="hubert")},
        path,
    )  # fmt: skip
    return path


def test_converted_file_loads_plain_and_restores_allowed_types(tmp_path: Path) -> None:
    src = _enum_and_namespace(tmp_path / "src.pt")
    dst = tmp_path / "dst.pt"
    ckptguard.convert(src, dst)
    plain = ckptguard.load(dst)
    assert plain["mode"] == factories.DSPMode.INFER.value
    assert plain["args"] == {"lr": 0.1, "arch": "hubert"}
    restored = ckptguard.load(dst, restore_types=True, allow=[factories.USER_ENUM])
    assert restored["mode"] is factories.DSPMode.INFER
    assert isinstance(restored["args"], argparse.Namespace) and restored["args"].lr == 0.1
    assert torch.equal(restored["w"], torch.arange(4.0))
    not_allowed = ckptguard.load(dst, restore_types=True)  # the Enum is not allowed: plain
    assert not_allowed["mode"] == factories.DSPMode.INFER.value


def test_safetensors_conversion_reads_back_the_nested_structure(tmp_path: Path) -> None:
    src = factories.training_checkpoint(tmp_path / "train.pt")
    dst = tmp_path / "train.safetensors"
    ckptguard.convert(src, dst, to="safetensors")
    loaded = ckptguard.load(dst)
    ref = torch.load(src, weights_only=False)
    assert sorted(k for k in loaded if k != "__ckptguard__") == sorted(ref)
    for k, v in ref["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert loaded["epoch"] == 3 and float(loaded["val_loss"]) == 0.25
