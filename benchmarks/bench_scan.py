"""Benchmark: ``ckptguard scan`` against ``picklescan``, whole processes, on three checkpoints.

    python benchmarks/bench_scan.py [--size-gib 1] [--runs 7]     (or: make bench)

Generates its inputs once into ``bench-data/`` (gitignored; delete it to regenerate):

* ``large-<N>gib.pt``  a state_dict of large float32 tensors (torch.save), N GiB
* ``pickle-heavy.pt``  Adam state for many small parameters plus a dict of 100k+ small Python
                        values and numpy scalars: a data.pkl of tens of MB
* ``many-small/``      a directory of 50 small checkpoints (state_dicts and training checkpoints)
* ``many-small-500/``  the same kind, 500 of them: with the 50, it gives each tool's cost per
                        file (the slope), which decides the ratio on large directories

then times whole processes, interleaved (ckptguard, picklescan, ckptguard, ...) after one warm-up
each, ``--runs`` times: ``python -m ckptguard scan PATH --json > /dev/null`` against
``python -m picklescan -p PATH``. In process, for context, it also times ``ckptguard.scan`` against
``torch.load(weights_only=True)`` on the pickle-heavy file. Prints a Markdown table and writes it
to ``bench-data/results.md``. Timings are wall-clock (time.perf_counter); report medians.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench-data"
SRC = ROOT / "src"


# ---------------------------------------------------------------------------------------------
# inputs


def _done(path: Path) -> bool:
    return path.with_name(path.name + ".done").exists()


def _mark_done(path: Path) -> None:
    path.with_name(path.name + ".done").write_text("ok\n")


def make_large(path: Path, size_gib: float) -> Path:
    import torch

    if _done(path):
        return path
    total = int(size_gib * (1 << 30))
    chunk = 64 << 20  # 64 MiB per tensor
    gen = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}
    i = 0
    while total > 0:
        n = min(chunk, total) // 4
        sd[f"layers.{i}.weight"] = torch.rand(n, generator=gen).reshape(-1, 1024)
        total -= n * 4
        i += 1
    torch.save(sd, path)
    _mark_done(path)
    return path


def make_pickle_heavy(path: Path) -> Path:
    import numpy as np
    import torch

    if _done(path):
        return path
    n_params = 4000
    params = [torch.zeros(8) for _ in range(n_params)]
    state = {
        i: {"step": torch.tensor(100.0), "exp_avg": p.clone(), "exp_avg_sq": p.clone()}
        for i, p in enumerate(params)
    }
    optimizer = {
        "state": state,
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "amsgrad": False,
                "params": list(range(n_params)),
            }
        ],
    }
    history: dict[str, object] = {}
    for step in range(300_000):
        history[f"step_{step}"] = {
            "loss": 1.0 / (step + 1),
            "lr": 1e-3,
            "tag": f"epoch{step // 1000}",
            "ok": step % 7 != 0,
        }
    metrics = {f"val_{i}": np.float64(i / 3) for i in range(60_000)}
    counters = {f"count_{i}": np.int64(i) for i in range(60_000)}
    torch.save(
        {
            "model": {f"p{i}": p for i, p in enumerate(params)},
            "optimizer": optimizer,
            "history": history,
            "metrics": metrics,
            "counters": counters,
        },
        path,
    )
    _mark_done(path)
    return path


def make_many_small(folder: Path, count: int = 50) -> Path:
    import numpy as np
    import torch

    if _done(folder):
        return folder
    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    for i in range(count):
        model = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
        )
        if i % 2:
            obj: object = model.state_dict()
        else:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            obj = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": i,
                "val_loss": np.float64(0.5 / (i + 1)),
            }
        torch.save(obj, folder / f"ckpt_{i:03}.pt")
    _mark_done(folder)
    return folder


def data_pkl_size(path: Path) -> int | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist() if i.filename.endswith("data.pkl"))
    except (OSError, zipfile.BadZipFile):
        return None


def tree_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix == ".pt")
    return path.stat().st_size


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


# ---------------------------------------------------------------------------------------------
# timing


def _env() -> dict[str, str]:
    env = dict(os.environ)
    if importlib.util.find_spec("ckptguard") is None:  # not installed: use the checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.pop("CKPTGUARD_POLICY", None)
    # Both tools run as installed packages would: with their bytecode cached (the warm-up run
    # writes ckptguard's .pyc files; picklescan's come with its installation).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def ckptguard_cmd(path: Path) -> list[str]:
    return [sys.executable, "-m", "ckptguard", "scan", str(path), "--json", "--no-progress"]


def picklescan_cmd(path: Path) -> list[str]:
    return [sys.executable, "-m", "picklescan", "-p", str(path)]


def time_process(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
    )
    return time.perf_counter() - t0, proc.returncode


@dataclass
class Row:
    label: str
    size: int
    ckptguard: list[float]
    picklescan: list[float]
    ckptguard_rc: int
    picklescan_rc: int


def bench_processes(label: str, path: Path, runs: int) -> Row:
    env = _env()
    cmds = {"ckptguard": ckptguard_cmd(path), "picklescan": picklescan_cmd(path)}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    rcs: dict[str, int] = {}
    for name, cmd in cmds.items():  # warm-up: page cache, .pyc files
        _, rcs[name] = time_process(cmd, env)
    for i in range(runs):
        order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
        for name in order:
            dt, _ = time_process(cmds[name], env)
            times[name].append(dt)
    print(f"  timed {label}: {runs} runs each", file=sys.stderr, flush=True)
    return Row(
        label,
        tree_size(path),
        times["ckptguard"],
        times["picklescan"],
        rcs["ckptguard"],
        rcs["picklescan"],
    )


def bench_in_process(path: Path, runs: int) -> tuple[list[float], list[float], str]:
    if importlib.util.find_spec("ckptguard") is None:
        sys.path.insert(0, str(SRC))
    import torch

    import ckptguard

    def ckpt() -> None:
        ckptguard.scan(path, jobs=1)

    # torch's weights-only unpickler refuses numpy scalars unless their globals are allowed;
    # the file is ours, so allow exactly what torch says it needs.
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    resolved = []
    for qual in needed:
        module, _, name = qual.rpartition(".")
        resolved.append(getattr(importlib.import_module(module), name))

    if any(n.startswith("numpy") for n in needed):  # dtype objects are BUILT with their class
        import numpy as np

        resolved += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]

    def tload() -> None:
        with torch.serialization.safe_globals(resolved):
            torch.load(path, weights_only=True)

    funcs: dict[str, Callable[[], None]] = {"ckptguard": ckpt, "torch": tload}
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for f in funcs.values():
        f()
    for i in range(runs):
        order = list(funcs) if i % 2 == 0 else list(reversed(funcs))
        for name in order:
            t0 = time.perf_counter()
            funcs[name]()
            times[name].append(time.perf_counter() - t0)
    return times["ckptguard"], times["torch"], ", ".join(needed)


def fmt(ts: list[float]) -> str:
    return f"{statistics.median(ts) * 1000:,.0f} ms (min {min(ts) * 1000:,.0f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gib", type=float, default=1.0, help="size of the large checkpoint")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per command")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args(argv)

    DATA.mkdir(exist_ok=True)
    print("generating inputs (cached in bench-data/) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    size_tag = f"{args.size_gib:g}".replace(".", "_")
    large = make_large(DATA / f"large-{size_tag}gib.pt", args.size_gib)
    heavy = make_pickle_heavy(DATA / "pickle-heavy.pt")
    many = make_many_small(DATA / "many-small")
    many500 = make_many_small(DATA / "many-small-500", count=500)
    print(f"  ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    # what each tool says (sanity: same files, both finish)
    env = _env()
    verdicts = {}
    for p in (large, heavy, many, many500):
        out = subprocess.run(ckptguard_cmd(p), capture_output=True, text=True, env=env, check=False)
        try:
            doc = json.loads(out.stdout)
            verdicts[p.name] = ", ".join(sorted({f["verdict"] for f in doc["files"]}))
        except (ValueError, KeyError):
            verdicts[p.name] = f"exit {out.returncode}: {out.stderr.strip()[:200]}"

    rows = []
    for label, path in (
        (f"{large.name} (state_dict, {args.size_gib:g} GiB)", large),
        (f"{heavy.name} (data.pkl {human(data_pkl_size(heavy) or 0)})", heavy),
        (f"{many.name}/ (50 files)", many),
        (f"{many500.name}/ (500 files)", many500),
    ):
        rows.append(bench_processes(label, path, args.runs))
    # cost per file: the slope between the 50- and the 500-file directories
    per_file = {
        tool: (
            statistics.median(getattr(rows[3], tool)) - statistics.median(getattr(rows[2], tool))
        )
        / 450
        for tool in ("ckptguard", "picklescan")
    }

    baseline: list[float] = []
    for _ in range(args.runs):
        baseline.append(time_process([sys.executable, "-c", "pass"], env)[0])
    version_times = [
        time_process([sys.executable, "-m", "ckptguard", "--version"], env)[0]
        for _ in range(args.runs)
    ]

    import torch

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" torch {torch.__version__}, picklescan {version('picklescan')}; "
        f"{args.runs} interleaved runs after one warm-up, median (min).",
        "",
        "| file | size | ckptguard scan --json | picklescan -p | ckptguard / picklescan |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = statistics.median(r.ckptguard) / statistics.median(r.picklescan)
        lines.append(
            f"| {r.label} | {human(r.size)} | {fmt(r.ckptguard)} | {fmt(r.picklescan)} | "
            f"{ratio:.2f}x |"
        )
    lines += [
        "",
        f"Process start-up: `python -c pass` {fmt(baseline)}, "
        f"`python -m ckptguard --version` {fmt(version_times)}.",
        f"Per file (slope from 50 to 500 small files): ckptguard "
        f"{per_file['ckptguard'] * 1000:.2f} ms, picklescan {per_file['picklescan'] * 1000:.2f} ms "
        f"({per_file['ckptguard'] / per_file['picklescan']:.2f}x).",
        "Exit status (ckptguard / picklescan): "
        + "; ".join(f"{r.label.split(' ')[0]} {r.ckptguard_rc}/{r.picklescan_rc}" for r in rows)
        + ". ckptguard verdicts: "
        + "; ".join(f"{k}: {v}" for k, v in verdicts.items())
        + ".",
    ]
    if not args.skip_in_process:
        ck, tl, needed = bench_in_process(heavy, args.runs)
        lines += [
            "",
            f"In process on {heavy.name}: `ckptguard.scan` {fmt(ck)}; "
            f"`torch.load(weights_only=True)` {fmt(tl)} "
            f"(ratio {statistics.median(ck) / statistics.median(tl):.2f}x; torch needed "
            f"safe_globals for: {needed or 'nothing'}).",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    (DATA / "results.md").write_text(text)
    print(f"written to {(DATA / 'results.md').relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
