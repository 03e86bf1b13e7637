"""Training state that survives PyTorch >= 2.6: portable RNG state and resume checkpoints.

Import it explicitly (it imports torch; ``import ckptguard`` does not)::

    from ckptguard.training import (
        capture_rng_state, restore_rng_state, save_checkpoint, load_checkpoint)

    save_checkpoint("ckpt.pt", model=model, optimizer=opt, scheduler=sched,
                    rng=capture_rng_state(), step=step, metrics={"loss": loss})
    ...
    ckpt = load_checkpoint("ckpt.pt", map_location="cpu")
    model.load_state_dict(ckpt["model"])
    restore_rng_state(ckpt["rng"])

Everything :func:`save_checkpoint` writes loads with stock ``torch.load(weights_only=True)``
and no allowlist. :func:`restore_rng_state` also reads the legacy forms that break under
weights-only loading or after ``map_location`` (see docs/training.md).
"""

from __future__ import annotations

from ckptguard._training._checkpoint import load_checkpoint, save_checkpoint
from ckptguard._training._rng import (
    FORMAT_VERSION,
    RngStateWarning,
    capture_rng_state,
    restore_rng_state,
)

__all__ = [
    "FORMAT_VERSION",
    "RngStateWarning",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
