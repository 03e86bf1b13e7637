"""A small custom nn.Module for whole-model pickles (``torch.save(model)``), importable by the
test process and by its children (tests.subproc puts the checkout on sys.path)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.norm = torch.nn.BatchNorm1d(2)
        self.register_buffer("steps", torch.arange(4, dtype=torch.int64))
        self.scale = torch.nn.Parameter(torch.full((2,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x)) * self.scale


CLASSES = [
    "tests._load.whole_model.TinyNet",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.batchnorm.BatchNorm1d",
]


def make() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet()
    model.norm.running_mean += 1.5
    return model
