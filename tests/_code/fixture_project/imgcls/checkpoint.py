"""Saving and loading training checkpoints."""

from __future__ import annotations

import functools
import os

import torch

# A default loader other modules use for weights on the CPU.
cpu_load = functools.partial(torch.load, map_location="cpu")


def save_checkpoint(path, model, optimizer, epoch, args):
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "args": args,  # an argparse.Namespace
        },
        path,
    )


def load_checkpoint(path, device="cpu", **kwargs):
    """Load a checkpoint written by :func:`save_checkpoint`."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    # the checkpoint holds an argparse.Namespace, so weights_only=True fails on torch >= 2.6
    return torch.load(path, map_location=device, weights_only=False, **kwargs)


def resume(path, model, optimizer):
    ckpt = torch.load(
        path,
        map_location="cpu",  # load on CPU first, the model moves itself later
        weights_only=False,
    )
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["epoch"] + 1
