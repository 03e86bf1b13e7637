"""Benchmark: DCP (torch.distributed.checkpoint) scan, load and convert, side by side.

Checkpoints are written by ``dcp.save`` into a temporary directory under bench-data/
(gitignored) and removed at the end:

* **scan** a small and a large checkpoint with the same non-tensor items (numpy RNG state,
  an ``argparse.Namespace``, ints): ckptguard reads ``.metadata`` and the bytes items, never
  tensor data, so the time should stay flat as tensor bytes grow;
* **load** ``ckptguard.dcp.load`` against stock ``dcp.load`` on the same checkpoint
  (target: within 1.10x);
* **convert** ``ckptguard convert DCP_DIR out.pt`` against copying the shard files
  (target: within 1.5x).

Each measurement is repeated ``--repeat`` times in rotating order on a warm page cache; the
script prints medians and ratios.

    python benchmarks/bench_dcp.py [--small-mib 64] [--large-mib 1024] [--load-mib 256]
                                   [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp

import ckptguard
import ckptguard.dcp

DATA = Path(__file__).resolve().parents[1] / "bench-data"
_TENSORS = 8  # the same number of tensors at every size: only tensor bytes grow


def state(size_mib: int, *, fill: bool = True) -> dict[str, Any]:
    n, per = _TENSORS, (size_mib << 20) // _TENSORS // 4
    gen = torch.Generator().manual_seed(0)

    def make() -> torch.Tensor:
        return torch.randn(per, generator=gen) if fill else torch.empty(per)

    return {
        "model": {f"layer{i}.weight": make() for i in range(n)},
        "step": 1000,
        "args": argparse.Namespace(lr=3e-4, name="run"),
        "rng": np.random.RandomState(0).get_state(),
    }


def save(root: Path, size_mib: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state(size_mib), checkpoint_id=str(root), no_dist=True)
    os.sync()  # measure reads, not the writeback of what was just written
    return root


def timed(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    DATA.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-dcp-", dir=DATA))
    results: dict[str, Any] = {}
    try:
        small = save(work / "small", args.small_mib)
        large = save(work / "large", args.large_mib)
        scan = timed(
            {"small": lambda: ckptguard.scan(small), "large": lambda: ckptguard.scan(large)},
            args.repeat,
        )
        results["scan_s"] = scan
        results["scan_ratio_large_to_small"] = scan["large"] / scan["small"]
        shutil.rmtree(large)

        mid = save(work / "mid", args.load_mib)
        sd_stock, sd_ours = state(args.load_mib, fill=False), state(args.load_mib, fill=False)

        def stock() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dcp.load(sd_stock, checkpoint_id=str(mid), no_dist=True)

        def ours() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ckptguard.dcp.load(sd_ours, checkpoint_id=mid, no_dist=True)

        load = timed({"dcp.load": stock, "ckptguard.dcp.load": ours}, args.repeat)
        results["load_s"] = load
        results["load_ratio"] = load["ckptguard.dcp.load"] / load["dcp.load"]

        out = work / "out.pt"
        copy_dir = work / "copy"

        def convert() -> None:
            ckptguard.convert(mid, out, force=True)

        def copy() -> None:
            copy_dir.mkdir(exist_ok=True)
            for p in mid.glob("*.distcp"):
                shutil.copyfile(p, copy_dir / p.name)

        conv = timed({"copy shards": copy, "ckptguard convert": convert}, args.repeat)
        results["convert_s"] = conv
        results["convert_ratio"] = conv["ckptguard convert"] / conv["copy shards"]
        results["sizes_mib"] = {
            "small": args.small_mib, "large": args.large_mib, "load/convert": args.load_mib,
        }  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small-mib", type=int, default=64)
    p.add_argument("--large-mib", type=int, default=1024)
    p.add_argument("--load-mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    r = bench(args)
    s = r["scan_s"]
    print(f"scan   {args.small_mib:>5} MiB: {s['small'] * 1e3:8.1f} ms (median)")
    print(f"scan   {args.large_mib:>5} MiB: {s['large'] * 1e3:8.1f} ms  "
          f"ratio {r['scan_ratio_large_to_small']:.2f}x")  # fmt: skip
    ld = r["load_s"]
    print(f"load   {args.load_mib:>5} MiB: dcp.load {ld['dcp.load'] * 1e3:8.1f} ms, "
          f"ckptguard.dcp.load {ld['ckptguard.dcp.load'] * 1e3:8.1f} ms  "
          f"ratio {r['load_ratio']:.2f}x (target <= 1.10x)")  # fmt: skip
    cv = r["convert_s"]
    print(f"convert {args.load_mib:>4} MiB: copy shards {cv['copy shards'] * 1e3:8.1f} ms, "
          f"ckptguard convert {cv['ckptguard convert'] * 1e3:8.1f} ms  "
          f"ratio {r['convert_ratio']:.2f}x (target <= 1.5x)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    os.sync()


if __name__ == "__main__":
    main()
