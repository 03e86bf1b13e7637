"""Real checkpoints made at test time with torch, numpy, omegaconf and Lightning.

Each factory writes a file into a directory and returns its path. They are used by the scan,
format and (later) load tests; nothing here is hard-coded bytes except where a test needs a
specific historical shape (numpy 1.x names), which is then produced by a documented rewrite.
"""

from __future__ import annotations

import argparse
import enum
import io
import random
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class DSPMode(enum.Enum):
    """Stand-in for deepafx_st.utils.DSPMode: a user Enum in hyper-parameters."""

    NONE = "none"
    TRAIN_INFER = "train_infer"
    INFER = "infer"


@dataclass
class UserConfig:
    lr: float = 1e-3
    layers: int = 2


USER_ENUM = f"{DSPMode.__module__}.DSPMode"
USER_DATACLASS = f"{UserConfig.__module__}.UserConfig"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    )


def state_dict(path: Path) -> Path:
    torch.save(_model().state_dict(), path)
    return path


def training_checkpoint(path: Path, *, protocol: int = 2) -> Path:
    """Model + Adam state after a step + numpy/python/torch RNG state + numpy scalars."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    loss = model(torch.randn(2, 3, 8, 8)).sum()
    loss.backward()
    opt.step()
    sched.step()
    np.random.seed(1)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": 3,
        "step": np.int64(120),
        "val_loss": np.float64(0.25),
        "best_acc": np.float32(0.9),
        "history": np.arange(5, dtype=np.float32),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(ckpt, path, pickle_protocol=protocol)
    return path


def rewrite_data_pkl(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    """Copy a torch zip checkpoint, replacing bytes inside data.pkl (archive rewritten by zipfile).

    Used to produce historical shapes, e.g. numpy 1.x global names (``numpy.core``) from a file
    written under numpy 2.x (``numpy._core``): both are text GLOBAL opcodes at protocol 2.
    """
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert old in data, f"{old!r} not in data.pkl"
                data = data.replace(old, new)
            zout.writestr(info.filename, data)
    return dst


def numpy1_training_checkpoint(tmp: Path) -> Path:
    """A training checkpoint whose numpy globals use numpy 1.x names (numpy.core.*)."""
    src = training_checkpoint(tmp / "np2.pt")
    return rewrite_data_pkl(
        src, tmp / "np1.pt", b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"
    )


def omegaconf_checkpoint(path: Path) -> Path:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {"model": {"hidden": 32, "act": "relu", "dropout": 0.1}, "data": {"paths": ["a", "b"]}}
    )
    torch.save({"state_dict": _model().state_dict(), "cfg": cfg}, path)
    return path


def namespace_checkpoint(path: Path) -> Path:
    """fairseq-style: argparse.Namespace args + plain containers."""
    args = argparse.Namespace(arch="hubert", lr=[0.0005], update_freq=[1], seed=1)
    torch.save({"args": args, "model": _model().state_dict(), "extra": OrderedDict(a=1)}, path)
    return path


def user_enum_checkpoint(path: Path) -> Path:
    torch.save({"state_dict": _model().state_dict(), "hparams": {"mode": DSPMode.INFER}}, path)
    return path


def user_dataclass_checkpoint(path: Path) -> Path:
    torch.save({"state_dict": _model().state_dict(), "config": UserConfig()}, path)
    return path


def legacy_checkpoint(path: Path) -> Path:
    torch.save(_model().state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def plain_pickle(path: Path, obj: Any, protocol: int) -> Path:
    import pickle

    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def lightning_checkpoint(tmp: Path, *, with_enum: bool) -> Path:
    """A real Lightning checkpoint written by Trainer.fit (hyper-parameters saved)."""
    import logging
    import warnings

    import pytorch_lightning as pl

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class TinyModule(pl.LightningModule):
        def __init__(self, hidden: int = 4, mode: Any = "plain", lr: float = 0.01) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(3, hidden)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            out: torch.Tensor = self.layer(batch[0]).sum()
            self.log("train_loss", out)
            return out

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(8, 3))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    module = TinyModule(mode=DSPMode.TRAIN_INFER if with_enum else "plain")
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp),
        accelerator="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    path = tmp / ("lightning-enum.ckpt" if with_enum else "lightning.ckpt")
    trainer.save_checkpoint(path)
    return path


def torch_zip_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def data_pkl_zip(data_pkl: bytes, *, compress: int = zipfile.ZIP_STORED) -> bytes:
    """A minimal torch zip checkpoint around ``data_pkl`` (no storages): the container that
    torch.load reads a hostile pickle from."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return buf.getvalue()
