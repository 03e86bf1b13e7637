"""Worker of tests/_dcp/test_multirank.py: ``python -m tests._dcp.multirank_worker MODE DIR``.

Runs ``WORLD`` ranks (torch.multiprocessing spawn, gloo on CPU, init_method file://). Each
rank holds a DTensor sharded on dim 0 over a 1-D CPU mesh, a plain replicated tensor and
non-tensor items. MODE ``save`` writes the checkpoint; ``load`` loads it with stock dcp.load
and with ckptguard.dcp.load into fresh state dicts and writes ``ok-RANK`` when both agree
with what was saved; ``refuse`` expects ckptguard.dcp.load to refuse (writes ``refused-RANK``).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

WORLD = 2


def _expected_full() -> Any:
    import torch

    return torch.arange(8 * 6, dtype=torch.float32).reshape(8, 6) / 7


def _state(rank: int, mesh: Any, fill: bool) -> dict[str, Any]:
    import torch
    from torch.distributed.tensor import Shard, distribute_tensor

    full = _expected_full() if fill else torch.zeros(8, 6)
    return {
        "w": distribute_tensor(full, mesh, [Shard(0)]),
        "bias": torch.full((3,), 2.5) if fill else torch.zeros(3),
        "step": 42 if fill else 0,
        "args": argparse.Namespace(lr=0.25) if fill else None,
    }


def _worker(rank: int, mode: str, root: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{root}.init", rank=rank, world_size=WORLD)
    try:
        mesh = init_device_mesh("cpu", (WORLD,))
        if mode == "save":
            dcp.save(_state(rank, mesh, True), checkpoint_id=root)
            return
        import ckptguard.dcp
        from ckptguard import CheckpointError

        ours = _state(rank, mesh, False)
        if mode == "refuse":
            try:
                ckptguard.dcp.load(ours, checkpoint_id=root)
            except CheckpointError:
                Path(f"{root}.refused-{rank}").write_text("refused")
            return
        stock = _state(rank, mesh, False)
        dcp.load(stock, checkpoint_id=root)
        ckptguard.dcp.load(ours, checkpoint_id=root)
        want = _expected_full().chunk(WORLD)[rank]
        local = ours["w"].to_local()
        ok = (
            torch.equal(local, want)
            and torch.equal(local, stock["w"].to_local())
            and torch.equal(ours["bias"], stock["bias"])
            and ours["step"] == stock["step"] == 42
            and ours["args"] == stock["args"]
        )
        if ok:
            Path(f"{root}.ok-{rank}").write_text("ok")
    finally:
        dist.destroy_process_group()


def main() -> None:
    import torch.multiprocessing as mp

    mode, root = sys.argv[1], sys.argv[2]
    if os.path.exists(f"{root}.init"):
        os.remove(f"{root}.init")
    mp.spawn(_worker, args=(mode, root), nprocs=WORLD, join=True)


if __name__ == "__main__":
    main()
