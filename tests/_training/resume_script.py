"""Train a small model where every RNG matters; run in subprocesses by
tests/_training/test_training.py.

    resume_script.py full      OUT   train STEPS steps, write OUT/full.pt
    resume_script.py first     OUT   train SPLIT steps, save_checkpoint(OUT/ckpt.pt)
    resume_script.py resume    OUT   LOADER  load OUT/ckpt.pt, restore, train to STEPS,
                                             write OUT/resumed.pt
    resume_script.py resume-no-rng OUT       the same without restore_rng_state (control)

LOADER is "stock" (torch.load(weights_only=True), nothing allowlisted) or "ckptguard"
(ckptguard.training.load_checkpoint). Each step draws a batch with Python's `random`, adds
numpy noise and runs a dropout layer and a torch.randn augmentation, so a resume is only
bit-identical when all three RNGs come back.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch

from ckptguard.training import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

STEPS = 12
SPLIT = 5
BATCH = 8


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)  # fixed data, independent of the global RNGs
    x = torch.randn(64, 6, generator=g)
    y = (x @ torch.randn(6, 1, generator=g)).squeeze(1) + 0.1 * torch.randn(64, generator=g)
    return x, y


Scheduler = torch.optim.lr_scheduler.LRScheduler


def build(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, Scheduler]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 1)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    return model, optimizer, scheduler


def step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler,
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    index = random.sample(range(len(x)), BATCH)  # Python RNG
    noise = np.random.normal(0.0, 0.05, size=(BATCH, x.shape[1]))  # numpy RNG
    batch = x[index] + torch.from_numpy(noise.astype(np.float32))
    batch = batch + 0.01 * torch.randn_like(batch)  # torch RNG
    model.train()
    loss = torch.nn.functional.mse_loss(model(batch).squeeze(1), y[index])  # dropout: torch RNG
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.item())


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    mode, out = argv[0], Path(argv[1])
    x, y = data()
    if mode in ("full", "first"):
        model, optimizer, scheduler = build(seed=0)
        seed_all(7)
        losses = [
            step(model, optimizer, scheduler, x, y)
            for _ in range(STEPS if mode == "full" else SPLIT)
        ]
        if mode == "full":
            torch.save({"losses": losses, "weights": model.state_dict()}, out / "full.pt")
        else:
            save_checkpoint(
                out / "ckpt.pt",
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                rng=capture_rng_state(),
                step=SPLIT,
                losses=losses,
                metrics={"loss": np.float32(losses[-1])},
            )
        return
    loader = argv[2] if len(argv) > 2 else "stock"
    if loader == "stock":
        ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    else:
        ckpt = load_checkpoint(out / "ckpt.pt", map_location="cpu")
    model, optimizer, scheduler = build(seed=99)  # different init: the checkpoint must win
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    seed_all(12345)  # a fresh process's RNGs are anywhere; restoring must put them back
    if mode == "resume":
        restore_rng_state(ckpt["rng"])
    losses = list(ckpt["losses"])
    losses += [step(model, optimizer, scheduler, x, y) for _ in range(ckpt["step"], STEPS)]
    torch.save({"losses": losses, "weights": model.state_dict()}, out / "resumed.pt")


if __name__ == "__main__":
    main(sys.argv[1:])
