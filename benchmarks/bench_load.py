"""Benchmark: ckptguard.load against torch.load, side by side in one process.

Two checkpoints are generated into bench-data/ (gitignored):

* ``big``: about 1 GiB of float32 tensors in a state dict (tensor data dominates);
* ``optim``: a training checkpoint whose Adam state has many small tensors plus numpy
  RNG state and scalars (pickle work dominates);
* ``legacy``: the same kind of training checkpoint in the pre-1.6 format
  (``_use_new_zipfile_serialization=False``), which ckptguard reads with its own reader too.

Each loader is timed ``--repeat`` times in rotating order on a warm page cache; the script
prints the median of each and the ratio to ``torch.load(weights_only=True)``, the loader
ckptguard.load replaces. ``torch.load(weights_only=False)`` (unsafe) is shown for reference.
numpy objects make torch's weights-only loader fail on ``optim``, so there it runs inside
``torch.serialization.safe_globals`` with the numpy globals that file needs.

    python benchmarks/bench_load.py [--size-mib 1024] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ckptguard

DATA = Path(__file__).resolve().parents[1] / "bench-data"


def make_big(path: Path, size_mib: int) -> Path:
    if path.exists() and path.stat().st_size >= size_mib * (1 << 20):
        return path
    per = 64 << 20  # 64 MiB tensors
    n = max(1, size_mib * (1 << 20) // per)
    gen = torch.Generator().manual_seed(0)
    sd = {f"layer{i}.weight": torch.randn(per // 4, generator=gen) for i in range(n)}
    torch.save(sd, path)
    return path


def make_optim(path: Path, n_params: int, *, legacy: bool = False) -> Path:
    if path.exists():
        return path
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8)) for _ in range(n_params)]
    opt = torch.optim.Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()  # type: ignore[union-attr]
    opt.step()
    np.random.seed(0)
    ckpt = {
        "model": {f"p{i}": p.detach() for i, p in enumerate(params)},
        "optimizer": opt.state_dict(),
        "numpy_rng": np.random.get_state(),
        "history": [{"step": np.int64(i), "loss": np.float64(1.0 / (i + 1))} for i in range(2000)],
        "epoch": 7,
    }
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def _numpy_globals() -> list[Any]:
    from numpy._core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined]

    return [
        _reconstruct, scalar, np.ndarray, np.dtype,
        type(np.dtype(np.uint32)), type(np.dtype(np.int64)), type(np.dtype(np.float64)),
        type(np.dtype(np.uint8)),
    ]  # fmt: skip


def loaders(mmap: bool, needs_numpy: bool) -> dict[str, Callable[[Path], Any]]:
    def wo_true(p: Path) -> Any:
        if not needs_numpy:
            return torch.load(p, weights_only=True, mmap=mmap)
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(p, weights_only=True, mmap=mmap)

    return {
        "torch.load(weights_only=True)": wo_true,
        "torch.load(weights_only=False)  [unsafe]": lambda p: torch.load(
            p, weights_only=False, mmap=mmap
        ),
        "ckptguard.load": lambda p: ckptguard.load(p, mmap=mmap),
    }


def bench(path: Path, repeat: int, mmap: bool, needs_numpy: bool) -> dict[str, float]:
    fns = loaders(mmap, needs_numpy)
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for name in names:  # warm-up: page cache, imports
        fns[name](path)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            t0 = time.perf_counter()
            obj = fns[name](path)
            times[name].append(time.perf_counter() - t0)
            del obj
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--optim-params", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    files = {
        "big": make_big(DATA / f"big-{args.size_mib}mib.pt", args.size_mib),
        "optim": make_optim(DATA / f"optim-{args.optim_params}.pt", args.optim_params),
        "legacy": make_optim(
            DATA / f"legacy-{args.optim_params // 4}.pt", args.optim_params // 4, legacy=True
        ),
    }
    results: dict[str, dict[str, float]] = {}
    for label, path in files.items():
        for mmap in (False, True) if label != "legacy" else (False,):  # no mmap on legacy
            mib = path.stat().st_size / (1 << 20)
            key = f"{label} ({mib:.0f} MiB){' mmap=True' if mmap else ''}"
            med = bench(path, args.repeat, mmap, needs_numpy=label != "big")
            results[key] = med
            base = med["torch.load(weights_only=True)"]
            print(f"\n{key}: median of {args.repeat}")
            for name, t in med.items():
                print(f"  {name:42s} {t * 1000:9.1f} ms   {t / base:5.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
