"""A tiny Lightning application whose hyper-parameters hold a user Enum (deepafx_st-style)."""

from __future__ import annotations

import enum
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


class DSPMode(enum.Enum):
    NONE = "none"
    TRAIN_INFER = "train_infer"


ENUM_NAME = f"{__name__}.DSPMode"


class TinyModule(pl.LightningModule):
    def __init__(self, hidden: int = 4, mode: DSPMode = DSPMode.NONE, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(3, hidden)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        out: torch.Tensor = self.layer(batch[0]).pow(2).mean()
        return out

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> torch.utils.data.DataLoader[Any]:
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, generator=gen))
    return torch.utils.data.DataLoader(data, batch_size=4)


def trainer(root: Path, max_epochs: int) -> pl.Trainer:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    return pl.Trainer(
        max_epochs=max_epochs, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(root),
        accelerator="cpu",
    )  # fmt: skip


def fit_and_save(root: Path) -> Path:
    torch.manual_seed(0)
    module = TinyModule(mode=DSPMode.TRAIN_INFER)
    t = trainer(root, max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(module, loader())
    path = root / "enum.ckpt"
    t.save_checkpoint(path)
    return path
