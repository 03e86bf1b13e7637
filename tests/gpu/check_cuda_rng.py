"""CUDA check for ckptguard.training's RNG state; run by hand on a machine with a GPU.

    PYTHONPATH=src python3 tests/gpu/check_cuda_rng.py

Not collected by pytest (CI is CPU-only). Prints one line per check and exits 1 if any fails.
Checks: a CUDA-captured state saved with save_checkpoint loads with stock weights-only loading
and restores with map_location="cpu" and "cuda", and in a CPU-only process (warning, CPU parts
restored); a legacy accelerate-style file whose tensors were mapped onto CUDA restores, where
stock torch.set_rng_state raises "RNG state must be a torch.ByteTensor"; more saved CUDA states
than devices warns and restores the ones present.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ckptguard
from ckptguard.training import (
    RngStateWarning,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

FAILED: list[str] = []


def check(name: str, fn: Callable[[], str]) -> None:
    try:
        detail = fn()
    except Exception as exc:  # report every check, then fail at the end
        FAILED.append(name)
        print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    else:
        print(f"ok   {name}" + (f": {detail}" if detail else ""))


def draws() -> tuple[Any, ...]:
    return (
        random.random(),
        float(np.random.randn()),
        torch.rand(4),
        torch.rand(4, device="cuda").cpu(),
        *(torch.rand(2, device=f"cuda:{i}").cpu() for i in range(torch.cuda.device_count())),
    )


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
        for x, y in zip(a, b, strict=True)
    )


def scramble() -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)  # also reseeds every CUDA device


def main() -> None:
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.device_count()} device(s): "
        f"{[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}; "
        f"numpy {np.__version__}; ckptguard.load present: {hasattr(ckptguard, 'load')}"
    )
    assert torch.cuda.is_available(), "needs CUDA"
    tmp = Path(tempfile.mkdtemp())
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    torch.rand(10, device="cuda")  # advance the CUDA generator's offset
    np.random.randn()
    state = capture_rng_state()
    want = draws()
    path = save_checkpoint(tmp / "cuda.pt", rng=state, step=1)

    def capture_form() -> str:
        cuda = state["cuda"]
        assert len(cuda) == torch.cuda.device_count()
        assert all(t.device.type == "cpu" and t.dtype == torch.uint8 for t in cuda)
        return f"cuda: {len(cuda)} CPU uint8 tensor(s) of {cuda[0].numel()} bytes"

    def restore_from(location: str) -> Callable[[], str]:
        def run() -> str:
            ckpt = torch.load(path, map_location=location, weights_only=True)
            devices = {ckpt["rng"]["torch"].device.type, ckpt["rng"]["cuda"][0].device.type}
            scramble()
            restore_rng_state(ckpt["rng"])
            assert same(draws(), want), "draws differ after restore"
            return f"stock weights-only load, tensors on {devices}, draws identical"

        return run

    def via_load_checkpoint() -> str:
        if not hasattr(ckptguard, "load"):
            return "skipped: ckptguard.load not in this tree yet"
        ckpt = load_checkpoint(path, map_location="cuda")
        scramble()
        restore_rng_state(ckpt["rng"])
        assert same(draws(), want)
        return "draws identical"

    def cpu_only_process() -> str:
        code = (
            "import random, warnings, torch, numpy as np\n"
            "from ckptguard.training import restore_rng_state\n"
            "assert not torch.cuda.is_available()\n"
            f"ckpt = torch.load({str(path)!r}, map_location='cpu', weights_only=True)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    restore_rng_state(ckpt['rng'])\n"
            "print(repr((random.random(), float(np.random.randn()), torch.rand(4).tolist())))\n"
            "print(' | '.join(str(x.message) for x in w))\n"
        )
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        values, warned = done.stdout.strip().splitlines()
        assert values == repr((want[0], want[1], want[2].tolist())), "CPU draws differ"
        assert "CUDA is not available" in warned, warned
        return f"CPU/numpy/Python draws identical; warned: {warned}"

    def legacy_mapped_onto_cuda() -> str:
        scramble()
        np.random.randn()
        legacy = {
            "step": 5,
            "random_state": random.getstate(),
            "numpy_random_seed": np.random.get_state(),
            "torch_manual_seed": torch.get_rng_state(),
            "torch_cuda_manual_seed": torch.cuda.get_rng_state_all(),
        }
        torch.save(legacy, tmp / "random_states_0.pkl")
        legacy_want = draws()
        try:
            torch.load(tmp / "random_states_0.pkl", weights_only=True)
            stock_wo = "loaded (unexpected)"
        except Exception as exc:
            stock_wo = f"stock weights-only refuses it ({type(exc).__name__})"
        # trusted test file: the pre-2.6 way, with the map_location people used
        loaded = torch.load(tmp / "random_states_0.pkl", map_location="cuda", weights_only=False)
        on = (loaded["torch_manual_seed"].device, loaded["torch_cuda_manual_seed"][0].device)
        try:
            torch.set_rng_state(loaded["torch_manual_seed"])
            stock_set = "stock torch.set_rng_state accepted it"
        except TypeError as exc:
            stock_set = f"stock torch.set_rng_state: TypeError: {exc}"
        scramble()
        restore_rng_state(loaded)
        assert same(draws(), legacy_want), "draws differ"
        return f"{stock_wo}; tensors on {on}; {stock_set}; restored, draws identical"

    def legacy_cuda_device_list_stock() -> str:
        states = [t.cuda() for t in torch.cuda.get_rng_state_all()]
        try:
            torch.cuda.set_rng_state_all(states)
            torch.rand(1, device="cuda")  # lazy callbacks run by now
            result = "accepted"
        except Exception as exc:
            result = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return f"stock torch.cuda.set_rng_state_all(CUDA tensors): {result}"

    def more_states_than_devices() -> str:
        count = torch.cuda.device_count()
        extra = capture_rng_state()
        extra["cuda"] = [*extra["cuda"], extra["cuda"][0].clone()]
        extra_want = draws()
        scramble()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restore_rng_state(extra)
        assert same(draws(), extra_want)
        messages = [str(w.message) for w in caught if issubclass(w.category, RngStateWarning)]
        assert messages and f"this machine has {count}" in messages[0], messages
        return f"warned: {messages[0]}"

    def bad_philox_offset() -> str:
        """ckptguard's Philox rule matches torch's, and a refused CUDA state changes nothing
        (torch itself sets the seed before it refuses the offset)."""
        state = capture_rng_state()
        raw = bytearray(bytes(state["cuda"][0].tolist()))
        raw[8] = (raw[8] & ~3) | 2  # offset no longer a multiple of 4
        bad = torch.tensor(list(raw), dtype=torch.uint8)
        g = torch.Generator(device="cuda:0")
        try:
            g.set_state(bad)
            stock = "accepted"
        except RuntimeError as exc:
            stock = str(exc).splitlines()[0]
        other = capture_rng_state()  # valid CPU / Python / numpy parts to restore with it
        random.seed(99)
        before = (random.getstate(), torch.cuda.get_rng_state(0), torch.get_rng_state())
        try:
            restore_rng_state({**other, "cuda": [bad]})
        except ckptguard.CorruptCheckpointError as exc:
            refused = exc.problem
        else:
            raise AssertionError("restore_rng_state accepted a bad Philox offset")
        assert random.getstate() == before[0]
        assert torch.equal(torch.cuda.get_rng_state(0), before[1])
        assert torch.equal(torch.get_rng_state(), before[2])
        return f"torch: {stock}; ckptguard: {refused}; no generator changed"

    check("capture form on CUDA", capture_form)
    check("CUDA-saved state, map_location='cpu', restore", restore_from("cpu"))
    check("CUDA-saved state, map_location='cuda', restore", restore_from("cuda"))
    check("CUDA-saved state via load_checkpoint", via_load_checkpoint)
    check("CUDA-saved state restored in a CPU-only process", cpu_only_process)
    check("legacy accelerate-style file mapped onto CUDA", legacy_mapped_onto_cuda)
    check("legacy CUDA list, stock API (for reference)", legacy_cuda_device_list_stock)
    check("more saved CUDA states than devices", more_states_than_devices)
    check("bad Philox offset refused, nothing changed", bad_philox_offset)
    print("FAILED: " + ", ".join(FAILED) if FAILED else "all CUDA checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
