"""ckptguard.patched / install: third-party code loads through ckptguard without edits."""

from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import ckptguard
from ckptguard._load import RefusedLoadWarning, is_installed
from tests import factories
from tests._load import hostile, lightning_app
from tests._load.equality import assert_same

FAIRSEQ_DICTIONARY = "fairseq.data.dictionary.Dictionary"


@pytest.fixture
def fairseq_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A stand-in `fairseq` package with a Dictionary class, importable for this test only."""
    pkg = tmp_path / "site" / "fairseq" / "data"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "dictionary.py").write_text(
        "class Dictionary:\n"
        "    def __init__(self):\n"
        "        self.symbols, self.count = ['<s>', 'a'], [1, 1]\n"
        "        self.indices = {'<s>': 0, 'a': 1}\n"
        "    def __len__(self):\n"
        "        return len(self.symbols)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "fairseq" or m.startswith("fairseq.")]:
        monkeypatch.delitem(sys.modules, name)
    from fairseq.data import dictionary  # type: ignore[import-not-found]

    yield dictionary
    for name in [m for m in sys.modules if m == "fairseq" or m.startswith("fairseq.")]:
        del sys.modules[name]


def load_checkpoint_to_cpu(path: Path) -> Any:
    """What fairseq's checkpoint_utils does: plain torch.load, safety switched off."""
    return torch.load(path, map_location=torch.device("cpu"), weights_only=False)


def test_patched_routes_torch_load_and_restores_exactly(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    before = (torch.load, torch.serialization.load)
    with ckptguard.patched(allow=[factories.USER_ENUM]):
        assert torch.load is torch.serialization.load and torch.load is not before[0]
        assert is_installed()
        assert torch.serialization.load(path)["hparams"]["mode"] is factories.DSPMode.INFER
    assert (torch.load, torch.serialization.load) == before
    assert torch.load is before[0]
    with pytest.raises(RuntimeError), ckptguard.patched():
        raise RuntimeError("boom")
    assert torch.load is before[0] and not is_installed()


def test_patched_refuses_without_the_allow_entry(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    with (
        ckptguard.patched(),
        pytest.warns(RefusedLoadWarning, match=factories.USER_ENUM),
        pytest.raises(ckptguard.UnsafeCheckpointError),
    ):
        torch.load(path, weights_only=False)


def test_patches_nest(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    original = torch.load
    with ckptguard.patched():
        outer = torch.load
        with ckptguard.patched(allow=[factories.USER_ENUM]):
            assert torch.load(path)["hparams"]["mode"] is factories.DSPMode.INFER
        assert torch.load is outer
        with pytest.raises(ckptguard.UnsafeCheckpointError), warnings.catch_warnings():
            warnings.simplefilter("ignore", RefusedLoadWarning)
            torch.load(path)
    assert torch.load is original


def test_install_and_uninstall(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    original = torch.load
    ckptguard.install(allow=[factories.USER_ENUM])
    try:
        assert torch.load(path)["hparams"]["mode"] is factories.DSPMode.INFER
        ckptguard.install()  # replaces the policy, keeps one layer
        with pytest.raises(ckptguard.UnsafeCheckpointError), warnings.catch_warnings():
            warnings.simplefilter("ignore", RefusedLoadWarning)
            torch.load(path)
    finally:
        ckptguard.uninstall()
    assert torch.load is original and torch.serialization.load is original
    ckptguard.uninstall()  # a second uninstall is a no-op
    assert torch.load is original


def test_fairseq_style_checkpoint_loads_through_plain_torch_load(
    tmp_path: Path, fairseq_standin: Any
) -> None:
    path = tmp_path / "hubert_base.pt"
    args = argparse.Namespace(arch="hubert", label_rate=50, normalize=False)
    torch.save(
        {"args": args, "task_state": {"dictionaries": [fairseq_standin.Dictionary()]},
         "model": factories._model().state_dict()},
        path,
    )  # fmt: skip
    with pytest.raises(pickle.UnpicklingError):  # stock torch.load's default refuses it
        torch.load(path)
    with ckptguard.patched(allow=[FAIRSEQ_DICTIONARY]):
        loaded = load_checkpoint_to_cpu(path)
    assert_same(loaded, torch.load(path, weights_only=False))
    assert len(loaded["task_state"]["dictionaries"][0]) == 2
    with (
        ckptguard.patched(),
        pytest.raises(ckptguard.CheckpointError, match=FAIRSEQ_DICTIONARY),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        load_checkpoint_to_cpu(path)


def test_lightning_load_from_checkpoint_and_fit_resume(tmp_path: Path) -> None:
    path = lightning_app.fit_and_save(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ckptguard.patched(allow=[lightning_app.ENUM_NAME]):
            model = lightning_app.TinyModule.load_from_checkpoint(path)
            assert model.hparams.mode is lightning_app.DSPMode.TRAIN_INFER
            trainer = lightning_app.trainer(tmp_path, max_epochs=2)
            resumed = lightning_app.TinyModule()
            trainer.fit(resumed, lightning_app.loader(), ckpt_path=str(path))
        assert trainer.current_epoch == 2
        ref = torch.load(path, weights_only=False)
        for k, v in ref["state_dict"].items():
            assert torch.equal(model.state_dict()[k], v)


def test_lightning_refused_without_allow(tmp_path: Path) -> None:
    path = lightning_app.fit_and_save(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ckptguard.patched(), pytest.raises(ckptguard.CheckpointError) as info:
            lightning_app.TinyModule.load_from_checkpoint(path)
        assert lightning_app.ENUM_NAME in str(info.value)
        with ckptguard.patched(), pytest.raises(ckptguard.CheckpointError):
            lightning_app.trainer(tmp_path, max_epochs=2).fit(
                lightning_app.TinyModule(), lightning_app.loader(), ckpt_path=str(path)
            )


@pytest.mark.parametrize("name", sorted(hostile.PAYLOADS))
def test_hostile_files_refused_inside_the_patch(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.PAYLOADS[name](marker))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ckptguard.patched(allow=["tests.*"]), pytest.raises(ckptguard.CheckpointError):
            torch.load(path, weights_only=False, pickle_module=__import__("pickle"))
    assert not marker.exists()
