"""Benchmark: the two pickle walkers (the scan's VM, convert's tree builder) on state dicts.

    .venv/bin/python benchmarks/bench_walkers.py [--runs 31] [--compare REV] [--batch 5]

Inputs are the ``data.pkl`` of ``torch.save`` for state dicts of realistic size, made from
fake tensors and saved with ``torch.serialization.skip_data`` (no tensor data is made or
written; the pickle is the one torch writes, persistent ids included): a ResNet-50-shaped
state dict (320 tensors with BatchNorm buffers), a Llama-7B-shaped one (291 tensors), a
GPT-2-XL-shaped one (580 tensors) and a training checkpoint (the Llama model plus Adam state:
about 900 tensors and per-parameter dicts).

Each walker is timed on its fast loop (what scan and convert run) and on its exact path
(every opcode through the dispatch table of named handlers, every bound checked at every
opcode: what the hand-inlined loops are measured against). With ``--compare REV`` (default
29478d3, the code before the walkers shared one reader) the same timings are taken of that
revision's ``src/`` (``git archive`` into a temporary folder) in a second worker process, and
the two workers are timed in turn, batch by batch, so a noisy machine slows both alike.
A timing is the median over ``--runs`` batches of the seconds per walk. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("vm-fast", "vm-exact", "tree-fast", "tree-exact")

# ---------------------------------------------------------------------------------------------
# inputs


def _resnet50() -> dict[str, Any]:
    import torch

    sd: dict[str, Any] = {}

    def conv_bn(name: str, cin: int, cout: int, k: int) -> None:
        sd[f"{name}.weight"] = torch.empty(cout, cin, k, k)
        bn = name.replace("conv", "bn")
        for part in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{bn}.{part}"] = torch.empty(cout)
        sd[f"{bn}.num_batches_tracked"] = torch.empty((), dtype=torch.long)

    conv_bn("conv1", 3, 64, 7)
    cin = 64
    for li, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            conv_bn(f"{p}.conv1", cin, width, 1)
            conv_bn(f"{p}.conv2", width, width, 3)
            conv_bn(f"{p}.conv3", width, width * 4, 1)
            if b == 0:
                conv_bn(f"{p}.downsample.0.conv", cin, width * 4, 1)
            cin = width * 4
    sd["fc.weight"] = torch.empty(1000, 2048)
    sd["fc.bias"] = torch.empty(1000)
    return sd


def _llama(layers: int = 32, dim: int = 4096, ffn: int = 11008) -> dict[str, Any]:
    import torch

    sd: dict[str, Any] = {"model.embed_tokens.weight": torch.empty(32000, dim)}
    for i in range(layers):
        p = f"model.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[f"{p}.self_attn.{proj}.weight"] = torch.empty(dim, dim)
        sd[f"{p}.mlp.gate_proj.weight"] = torch.empty(ffn, dim)
        sd[f"{p}.mlp.up_proj.weight"] = torch.empty(ffn, dim)
        sd[f"{p}.mlp.down_proj.weight"] = torch.empty(dim, ffn)
        sd[f"{p}.input_layernorm.weight"] = torch.empty(dim)
        sd[f"{p}.post_attention_layernorm.weight"] = torch.empty(dim)
    sd["model.norm.weight"] = torch.empty(dim)
    sd["lm_head.weight"] = torch.empty(32000, dim)
    return sd


def _gpt2_xl(layers: int = 48, dim: int = 1600) -> dict[str, Any]:
    import torch

    sd: dict[str, Any] = {
        "wte.weight": torch.empty(50257, dim),
        "wpe.weight": torch.empty(1024, dim),
    }
    for i in range(layers):
        p = f"h.{i}"
        for ln in ("ln_1", "ln_2"):
            sd[f"{p}.{ln}.weight"] = torch.empty(dim)
            sd[f"{p}.{ln}.bias"] = torch.empty(dim)
        for name, shape in (
            ("attn.c_attn", (dim, 3 * dim)),
            ("attn.c_proj", (dim, dim)),
            ("mlp.c_fc", (dim, 4 * dim)),
            ("mlp.c_proj", (4 * dim, dim)),
        ):
            sd[f"{p}.{name}.weight"] = torch.empty(*shape)
            sd[f"{p}.{name}.bias"] = torch.empty(shape[1])
    sd["ln_f.weight"] = torch.empty(dim)
    sd["ln_f.bias"] = torch.empty(dim)
    return sd


def _training() -> dict[str, Any]:
    import torch

    model = _llama(layers=16)
    state = {
        i: {
            "step": torch.empty(()),
            "exp_avg": torch.empty_like(t),
            "exp_avg_sq": torch.empty_like(t),
        }
        for i, t in enumerate(model.values())
    }
    groups = [{"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1,
               "amsgrad": False, "params": list(range(len(model)))}]  # fmt: skip
    optimizer = {"state": state, "param_groups": groups}
    return {"model": model, "optimizer": optimizer, "epoch": 3, "step": 120_000}


INPUTS: dict[str, Callable[[], dict[str, Any]]] = {
    "resnet50": _resnet50,
    "llama-7b": _llama,
    "gpt2-xl": _gpt2_xl,
    "training (llama-3b + adam)": _training,
}


class _Sink:
    """Stands in for torch's zip writer: keeps data.pkl, drops the (skipped) tensor data."""

    def __init__(self) -> None:
        self.pkl = b""

    def write_record(self, name: str, data: Any, size: int) -> None:
        if name == "data.pkl":
            self.pkl = bytes(data)

    def write_record_metadata(self, name: str, size: int) -> None:
        pass


def data_pkl(make: Callable[[], dict[str, Any]]) -> bytes:
    """The data.pkl torch.save writes for ``make()``'s tensors, made as fake tensors (no
    memory) and saved without their data (torch.serialization.skip_data)."""
    import pickle

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        obj = make()
    sink = _Sink()
    with torch.serialization.skip_data(materialize_fake_tensors=True):
        torch.serialization._save(obj, sink, pickle, 2, True)
    return sink.pkl


# ---------------------------------------------------------------------------------------------
# the worker: one copy of ckptguard, timing one (input, mode) batch per request


def _walks(mode: str) -> Callable[[bytes], object] | None:
    """The walk for ``mode`` in the ckptguard on sys.path, or None where it has none (the
    VM had no exact mode before 29478d3's successor)."""
    import inspect

    from ckptguard._gc import gc_paused
    from ckptguard._pickle import _tree, _vm
    from ckptguard._pickle._analysis import DEFAULT_LIMITS

    def vm_exact(data: bytes) -> object:
        with gc_paused():
            return _vm.analyze_pickle(data, exact=True)

    def tree_exact(data: bytes) -> object:
        with gc_paused():
            if "exact" in inspect.signature(_tree._Builder).parameters:
                return _tree._Builder(data, 0, "bench", DEFAULT_LIMITS, exact=True).run()
            return _tree._Builder(data, 0, "bench", DEFAULT_LIMITS)._run_exact()  # type: ignore[attr-defined]

    if mode == "vm-fast":
        return _vm.analyze_pickle
    if mode == "tree-fast":
        return _tree.build_tree
    if mode == "tree-exact":
        return tree_exact
    if "exact" in inspect.signature(_vm._Walker).parameters:
        return vm_exact
    return None


def worker(src: str, inputs_dir: str, batch: int) -> None:
    sys.path.insert(0, src)
    inputs = {p.stem: p.read_bytes() for p in Path(inputs_dir).glob("*.pkl")}
    for request in sys.stdin:
        name, mode = json.loads(request)
        walk = _walks(mode)
        if walk is None:
            print(json.dumps(None), flush=True)
            continue
        data = inputs[name]
        walk(data)  # warm
        t0 = time.perf_counter()
        for _ in range(batch):
            walk(data)
        print(json.dumps((time.perf_counter() - t0) / batch), flush=True)


# ---------------------------------------------------------------------------------------------
# the parent


class Worker:
    def __init__(self, src: Path, inputs_dir: Path, batch: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(src), str(inputs_dir), str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def time(self, name: str, mode: str) -> float | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([name, mode]) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return None if out is None else float(out)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def _old_src(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src/ckptguard"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _ms(t: float | None) -> str:
    return "n/a" if t is None else f"{t * 1000:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=31, help="batches per timing (median)")
    ap.add_argument("--batch", type=int, default=5, help="walks per batch")
    ap.add_argument("--compare", default="29478d3", help="revision to compare ('' for none)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs_dir = Path(tmp, "inputs")
        inputs_dir.mkdir()
        keys = {}
        for i, (label, make) in enumerate(INPUTS.items()):
            data = data_pkl(make)
            keys[label] = f"in{i}"
            (inputs_dir / f"in{i}.pkl").write_bytes(data)
            print(f"{label}: data.pkl of {len(data):,} bytes", file=sys.stderr)
        workers = {"now": Worker(ROOT / "src", inputs_dir, args.batch)}
        if args.compare:
            workers[args.compare] = Worker(
                _old_src(args.compare, Path(tmp)), inputs_dir, args.batch
            )
        times: dict[tuple[str, str, str], list[float]] = {}
        missing: set[tuple[str, str, str]] = set()
        for _ in range(args.runs):
            for label, key in keys.items():
                for mode in MODES:
                    for who, w in workers.items():  # in turn: both see the same machine
                        t = w.time(key, mode)
                        if t is None:
                            missing.add((who, label, mode))
                        else:
                            times.setdefault((who, label, mode), []).append(t)
        for w in workers.values():
            w.close()

    def med(who: str, label: str, mode: str) -> float | None:
        if (who, label, mode) in missing:
            return None
        return statistics.median(times[who, label, mode])

    old = args.compare
    python = sys.version.split()[0]
    print(f"\nmedian ms per walk over {args.runs} batches of {args.batch} (python {python})\n")
    head = "| input | walker | fast (now) | exact (now) | fast/exact speed-up |"
    line = "|---|---|---|---|---|"
    if old:
        head += f" fast ({old}) | now / {old} (fast) | exact ({old}) |"
        line += "---|---|---|"
    print(head)
    print(line)
    for label in keys:
        for walker in ("vm", "tree"):
            fast, exact = med("now", label, f"{walker}-fast"), med("now", label, f"{walker}-exact")
            row = f"| {label} | {walker} | {_ms(fast)} | {_ms(exact)} | {_ratio(exact, fast)} |"
            if old:
                ofast, oexact = (
                    med(old, label, f"{walker}-fast"),
                    med(old, label, f"{walker}-exact"),
                )
                row += f" {_ms(ofast)} | {_ratio(fast, ofast)} | {_ms(oexact)} |"
            print(row)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
