"""Small modules for TorchScript archives (scripting needs their source in a real file)."""

from __future__ import annotations

import torch


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 3, 3)
        self.norm = torch.nn.BatchNorm1d(3)
        self.head = torch.nn.Linear(3, 2, bias=False)  # a None bias: not in state_dict
        self.register_buffer("table", torch.arange(6, dtype=torch.int32).reshape(2, 3))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.alpha = torch.nn.Parameter(torch.tensor([0.25], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x)).mean(-1)
        return self.head(y) * self.alpha.float()


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([Block(), Block()])
        self.emb = torch.nn.Embedding(5, 2)
        self.out = torch.nn.Linear(2, 5)
        self.out.weight = self.emb.weight  # tied: one tensor under two keys
        self.register_buffer("halves", torch.ones(3, dtype=torch.float16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = y + layer(x).sum()
        return self.out(y.mean(-1)[..., :2]) + self.halves.float().sum()


def make() -> Net:
    torch.manual_seed(0)
    net = Net()
    for b in net.layers:
        b.norm.running_mean += 1.0
    return net.eval()


def example() -> torch.Tensor:
    return torch.randn(1, 2, 5)
