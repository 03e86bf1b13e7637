"""Benchmark: ``ckptguard convert`` of a large checkpoint against ``cp`` of it, whole processes.

    python benchmarks/bench_convert.py [--size-gib 1] [--runs 5]

Generates ``bench-data/convert-<N>gib.pt`` once (gitignored): a training checkpoint whose
tensors total N GiB (64 MiB float32 tensors) plus what makes a file need converting (numpy
scalars and a numpy RNG state, an ``argparse.Namespace``). Then, interleaved after one warm-up
each, ``--runs`` times: ``cp SRC DST`` and ``python -m ckptguard convert SRC DST --force``.
Each command runs in its own child process; its peak RSS comes from ``os.wait4`` (the child's
own rusage). The order rotates between runs and ``sync`` runs (untimed) before each command, so
no command pays for the previous one's dirty pages. Prints a Markdown table (medians; the
ratio to ``cp`` both of the medians and as the median of each round's ratio, which cancels
slow phases of a shared machine's disk) and writes it to ``bench-data/convert.md``.
Timings are wall clock (time.perf_counter); the page cache is warm for both (the source is
read once before timing), which is the fair comparison for a copy-bound tool. Children run
without ``PYTHONDONTWRITEBYTECODE`` (bytecode cached, as for an installed package) and without
``CKPTGUARD_POLICY``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench-data"
SRC = ROOT / "src"


def make_input(path: Path, size_gib: float) -> Path:
    done = path.with_name(path.name + ".done")
    if done.exists():
        return path
    import argparse as ap

    import numpy as np
    import torch

    total = int(size_gib * (1 << 30))
    chunk = 64 << 20
    model = {f"layer{i}.weight": torch.randn(chunk // 4) for i in range(max(1, total // chunk))}
    np.random.seed(0)
    ckpt = {
        "model": model,
        "args": ap.Namespace(lr=1e-3, arch="bench"),
        "step": np.int64(1000),
        "val_loss": np.float64(0.5),
        "numpy_rng": np.random.get_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    done.write_text("ok\n")
    return path


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("CKPTGUARD_POLICY", None)
    # ckptguard runs as an installed package would: with its bytecode cached (the warm-up run
    # writes the .pyc files), as benchmarks/bench_scan.py does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    env = child_env()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with exit status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    src = DATA / f"convert-{args.size_gib:g}gib.pt"
    if args.make_only:
        make_input(src, args.size_gib)
        return
    # made in a child: this process must stay small, a forked child starts with its RSS
    subprocess.run(
        [sys.executable, __file__, "--make-only", "--size-gib", str(args.size_gib)], check=True
    )
    size = src.stat().st_size
    with open(src, "rb") as f:  # warm the page cache for both contestants
        while f.read(1 << 20):
            pass
    dst_cp = DATA / "convert-cp.out"
    dst_cv = DATA / "convert-ckptguard.out.pt"
    commands = {
        "cp": ["cp", str(src), str(dst_cp)],
        "ckptguard convert": [sys.executable, "-m", "ckptguard", "convert", str(src),
                              str(dst_cv), "--force"],
        "ckptguard convert --fsync": [sys.executable, "-m", "ckptguard", "convert", str(src),
                                      str(dst_cv), "--force", "--fsync"],
    }  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for argv in commands.values():  # warm-up
        run_child(argv)
    names = list(commands)
    for i in range(args.runs):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            for out in (dst_cp, dst_cv):
                out.unlink(missing_ok=True)
            os.sync()  # every command starts without the previous one's dirty pages
            results[name].append(run_child(commands[name]))
    cp_med = statistics.median(w for w, _ in results["cp"])
    lines = [
        f"convert benchmark: {size / (1 << 30):.2f} GiB checkpoint, {args.runs} runs, medians; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "| command | wall time (median) | fastest | vs cp | vs cp, per round | peak RSS (max) |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        fastest = min(w for w, _ in rows)
        cps = [c for c, _ in results["cp"]]
        rounds = statistics.median(w / c for (w, _), c in zip(rows, cps, strict=True))
        rss = max(r for _, r in rows)
        lines.append(
            f"| `{name}` | {wall:.2f} s | {fastest:.2f} s | {wall / cp_med:.2f}x | "
            f"{rounds:.2f}x | {rss:.0f} MiB |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    (DATA / "convert.md").write_text(text)
    for out in (dst_cp, dst_cv):
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
