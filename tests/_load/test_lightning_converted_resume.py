"""A real Lightning resume from a converted checkpoint: plain data by default, the Enum back with
restore_types=True (the convert trade-off, and its way back, for the deepafx-st user)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard._convert import convert_file
from ckptguard._policy import default_policy
from tests._load import lightning_app

pytestmark = pytest.mark.slow


def test_lightning_resume_from_a_converted_checkpoint(tmp_path: Path) -> None:
    path = lightning_app.fit_and_save(tmp_path)
    plain = tmp_path / "plain.ckpt"
    res = convert_file(str(path), str(plain), policy=default_policy())
    assert res.plain_types[lightning_app.ENUM_NAME] == "its value"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # stock PyTorch >= 2.6 loads the converted file; the Enum is its value: the trade-off
        model = lightning_app.TinyModule.load_from_checkpoint(plain)
        assert model.hparams.mode == "train_infer"
        assert model.hparams.mode != lightning_app.DSPMode.TRAIN_INFER
        # restore_types gives the Enum back, through Lightning's own torch.load
        with ckptguard.patched(allow=[lightning_app.ENUM_NAME], restore_types=True):
            model = lightning_app.TinyModule.load_from_checkpoint(plain)
            assert model.hparams.mode is lightning_app.DSPMode.TRAIN_INFER
            trainer = lightning_app.trainer(tmp_path, max_epochs=2)
            resumed = lightning_app.TinyModule()
            trainer.fit(resumed, lightning_app.loader(), ckpt_path=str(plain))
    assert trainer.current_epoch == 2
    original = torch.load(path, weights_only=False)["state_dict"]
    assert original.keys() == resumed.state_dict().keys()
