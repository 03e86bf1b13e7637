"""ckptguard.training: portable RNG state and resume checkpoints (issue 5).

The resume tests train in subprocesses (tests/_training/resume_script.py): a full run, a run
that stops and saves, and a fresh process that loads, restores and continues; losses and final
weights must be bit-identical. CUDA tests skip without CUDA; tests/gpu/check_cuda_rng.py is
the script run once on a GPU machine (results in docs/training.md).
"""

from __future__ import annotations

import collections
import enum
import io
import os
import pickle
import random
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ckptguard
from ckptguard import CheckpointError, CorruptCheckpointError, UsageError
from ckptguard.training import (
    FORMAT_VERSION,
    RngStateWarning,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "resume_script.py"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def draws() -> tuple[float, float, float, float]:
    """One draw from each global RNG (numpy twice: uniform and the cached-gaussian path)."""
    return (
        random.random(),
        float(np.random.rand()),
        float(np.random.randn()),
        float(torch.rand(1).item()),
    )


def stock_roundtrip(obj: object) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def legacy_roundtrip(obj: object) -> Any:
    """What people did before 2.6 (full unpickling); fine here: the test made the bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def run_script(*args: str | Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"


@pytest.fixture(autouse=True)
def keep_global_rngs() -> Any:
    """Tests set the global RNGs; put them back for the rest of the suite."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    yield
    random.setstate(saved[0])
    np.random.set_state(saved[1])
    torch.set_rng_state(saved[2])


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("full")
    run_script("full", out)
    full: dict[str, Any] = torch.load(out / "full.pt", weights_only=True)
    return full


def resume(tmp_path: Path, mode: str, loader: str) -> dict[str, Any]:
    run_script("first", tmp_path)
    run_script(mode, tmp_path, loader)
    resumed: dict[str, Any] = torch.load(tmp_path / "resumed.pt", weights_only=True)
    return resumed


def assert_identical(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["losses"] == want["losses"]  # exact float equality, every step
    assert got["weights"].keys() == want["weights"].keys()
    for name, tensor in want["weights"].items():
        assert torch.equal(got["weights"][name], tensor), name


# Train-save-resume in fresh processes (about 40 s each on 2 cores): run by `make test-slow`
# and CI; the in-process RNG round trips below stay in `make test`.
@pytest.mark.slow
@pytest.mark.parametrize("loader", ["stock", "ckptguard"])
def test_resume_in_new_process_is_bit_identical(
    tmp_path: Path, reference_run: dict[str, Any], loader: str
) -> None:
    # "stock": a fresh process, torch.load(weights_only=True), nothing allowlisted
    assert_identical(resume(tmp_path, "resume", loader), reference_run)


@pytest.mark.slow
def test_resume_without_restoring_rng_diverges(
    tmp_path: Path, reference_run: dict[str, Any]
) -> None:
    """The control: the training above really depends on the restored RNGs."""
    resumed = resume(tmp_path, "resume-no-rng", "stock")
    split = len(torch.load(tmp_path / "ckpt.pt", weights_only=True)["losses"])
    assert resumed["losses"][:split] == reference_run["losses"][:split]
    assert resumed["losses"][split:] != reference_run["losses"][split:]


# --------------------------------------------------------------------------- capture


def test_capture_form_is_plain_and_documented() -> None:
    state = capture_rng_state()
    expected = {"format_version", "python", "numpy", "torch"}
    assert set(state) == expected | ({"cuda"} if torch.cuda.is_available() else set())
    assert state["format_version"] == FORMAT_VERSION
    assert set(state["python"]) == {"version", "state", "gauss"}
    assert len(state["python"]["state"]) == 625
    numpy_state = state["numpy"]
    assert set(numpy_state) == {"bit_generator", "keys", "pos", "has_gauss", "cached_gaussian"}
    assert numpy_state["bit_generator"] == "MT19937"
    assert numpy_state["keys"].dtype == torch.int64 and numpy_state["keys"].shape == (624,)
    assert type(numpy_state["pos"]) is int and type(numpy_state["has_gauss"]) is int
    assert type(numpy_state["cached_gaussian"]) is float
    assert state["torch"].dtype == torch.uint8 and state["torch"].device.type == "cpu"


def test_capture_loads_with_stock_weights_only() -> None:
    np.random.randn()  # a cached gaussian in the numpy state
    state = capture_rng_state()
    loaded = stock_roundtrip(state)
    want = draws()
    restore_rng_state(loaded)
    assert draws() == want


def test_capture_loads_in_a_fresh_process_with_no_safe_globals(tmp_path: Path) -> None:
    path = tmp_path / "rng.pt"
    torch.save(capture_rng_state(), path)
    code = (
        "import sys, torch\n"
        "assert 'ckptguard' not in sys.modules\n"
        f"s = torch.load({str(path)!r}, weights_only=True)\n"
        "assert set(s) >= {'python', 'numpy', 'torch', 'format_version'}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_capture_restore_roundtrip_all_generators() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    draws()
    state = capture_rng_state()
    want = [draws() for _ in range(3)]
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(state)
    assert [draws() for _ in range(3)] == want


def test_import_ckptguard_stays_free_of_torch() -> None:
    code = "import sys, ckptguard; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_without_numpy_capture_skips_it_and_restore_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    with_numpy = capture_rng_state()
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy -> ImportError
    state = capture_rng_state()
    assert "numpy" not in state and "torch" in state
    with pytest.warns(RngStateWarning, match="numpy is not installed"):
        restore_rng_state(with_numpy)


# --------------------------------------------------------------------------- legacy forms


def legacy_state(**overrides: Any) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    state.update(overrides)
    return state


def test_legacy_numpy_tuple_fails_stock_weights_only_but_restores() -> None:
    np.random.randn()
    state = legacy_state()
    with pytest.raises(pickle.UnpicklingError):  # the first failure of the issue
        stock_roundtrip(state)
    loaded = legacy_roundtrip(state)  # np arrays inside, as such checkpoints hold
    assert isinstance(loaded["numpy"][1], np.ndarray)
    want = draws()
    restore_rng_state(loaded)
    assert draws() == want


def test_rng_state_must_be_a_byte_tensor_is_fixed() -> None:
    """The second failure: the state came back as some other tensor than a CPU ByteTensor."""
    wide = torch.get_rng_state().to(torch.int64)
    with pytest.raises(TypeError, match="ByteTensor"):
        torch.set_rng_state(wide)
    want = draws()
    random.seed(0)
    restore_rng_state(legacy_state(torch=wide, python=random.getstate()))
    assert draws()[3] == want[3]


@pytest.mark.parametrize(
    "form",
    [
        "int64",
        "int32",
        "strided",
        "numpy-uint8",
        "list",
        "bytes",
        "parameter",
    ],
)
def test_torch_state_forms(form: str) -> None:
    raw = torch.get_rng_state()
    value: Any = {
        "int64": raw.to(torch.int64),
        "int32": raw.to(torch.int32),
        "strided": torch.stack([raw, raw], dim=1)[:, 1],  # non-contiguous
        "numpy-uint8": raw.numpy().copy(),
        "list": raw.tolist(),
        "bytes": bytes(raw.tolist()),
        "parameter": torch.nn.Parameter(raw.clone(), requires_grad=False),
    }[form]
    want = torch.rand(4)
    torch.manual_seed(5)
    restore_rng_state({"torch": value})
    assert torch.equal(torch.rand(4), want)


def numpy_forms() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "tuple-ndarray": (name, keys, pos, has_gauss, cached),
        "tuple-np-scalars": (
            np.str_(name),
            keys,
            np.int64(pos),
            np.int32(has_gauss),
            np.float64(cached),
        ),
        "tuple-list": (name, keys.tolist(), pos, has_gauss, cached),
        "tuple-tensor-uint32": (name, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
        "list": [name, keys.astype(np.int64), pos, has_gauss, cached],
        "numpy-dict": np.random.get_state(legacy=False),
        "capture-dict": {
            "bit_generator": name,
            "keys": keys.tolist(),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },
    }


@pytest.mark.parametrize("form", list(numpy_forms()))
def test_numpy_state_forms(form: str) -> None:
    np.random.randn()  # leave a cached gaussian: has_gauss=1
    value = numpy_forms()[form]
    want = (float(np.random.randn()), float(np.random.rand()))
    np.random.seed(0)
    restore_rng_state({"numpy": value})
    assert (float(np.random.randn()), float(np.random.rand())) == want


@pytest.mark.parametrize("form", ["tuple", "list-state", "dict", "tensor-state"])
def test_python_state_forms(form: str) -> None:
    version, internal, gauss = random.getstate()
    value: Any = {
        "tuple": (version, internal, gauss),
        "list-state": [version, list(internal), gauss],
        "dict": {"version": version, "state": list(internal), "gauss": gauss},
        "tensor-state": (version, torch.tensor(internal, dtype=torch.int64), gauss),
    }[form]
    want = random.random()
    random.seed(0)
    restore_rng_state({"python": value})
    assert random.random() == want


def lightning_state() -> dict[str, Any]:
    seed = pytest.importorskip("lightning_fabric.utilities.seed")
    state: dict[str, Any] = seed._collect_rng_states()
    return state


@pytest.mark.parametrize(
    "style", ["lightning", "lightning-real", "accelerate", "hf-trainer", "ckptguard"]
)
def test_key_spellings_in_the_wild(style: str) -> None:
    np.random.randn()
    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    state: dict[str, Any] = {
        "lightning": lambda: {
            "torch": cpu,
            "python": python,
            "numpy": numpy_state,
            "torch.cuda": [],
        },
        "lightning-real": lightning_state,
        "accelerate": lambda: {
            "step": 10,
            "random_state": python,
            "numpy_random_seed": numpy_state,
            "torch_manual_seed": cpu,
            "torch_cuda_manual_seed": [],
        },
        "hf-trainer": lambda: {"python": python, "numpy": numpy_state, "cpu": cpu},
        "ckptguard": capture_rng_state,
    }[style]()
    want = draws()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known keys: no warning
        restore_rng_state(legacy_roundtrip(state))
    assert draws() == want


def test_other_accelerators_and_unknown_keys_warn() -> None:
    state = capture_rng_state()
    with pytest.warns(RngStateWarning, match="mps"):
        restore_rng_state({**state, "mps": torch.zeros(16, dtype=torch.uint8)})
    with pytest.warns(RngStateWarning, match="'numpyy'"):
        restore_rng_state({**state, "numpyy": 1})


# --------------------------------------------------------------------------- CUDA states


@cpu_only
def test_cuda_states_on_a_cpu_only_machine_warn_and_the_rest_restores() -> None:
    fake_cuda = [philox(0), philox(1, offset=8)]
    state = {**capture_rng_state(), "cuda": fake_cuda}
    want = draws()
    random.seed(0)
    torch.manual_seed(0)
    with pytest.warns(RngStateWarning, match="2 CUDA RNG states not restored: CUDA is not"):
        restore_rng_state(state)
    assert draws() == want


@cpu_only
def test_accelerate_cuda_list_with_int64_tensors_on_cpu_only_machine_warns() -> None:
    state = {
        "torch_manual_seed": torch.get_rng_state().long(),
        "torch_cuda_manual_seed": [torch.zeros(16, dtype=torch.int64)],
    }
    with pytest.warns(RngStateWarning, match="1 CUDA RNG state not restored"):
        restore_rng_state(state)


class FakeCuda:
    """torch.cuda with `devices` GPUs, recording set_rng_state calls (CPU-only CI)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, devices: int) -> None:
        self.set: list[tuple[int, torch.Tensor]] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "init", lambda: None)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: devices - 1)
        monkeypatch.setattr(
            torch.cuda, "get_rng_state", lambda device=0: torch.zeros(16, dtype=torch.uint8)
        )
        monkeypatch.setattr(
            torch.cuda, "set_rng_state", lambda state, device=0: self.set.append((device, state))
        )


def philox(seed: int, offset: int = 0, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """A CUDA generator state as torch.cuda.get_rng_state() writes it (seed, offset % 4 == 0)."""
    return torch.tensor(list(struct.pack("<Qq", seed, offset)), dtype=dtype)


def cuda_states(n: int) -> list[torch.Tensor]:
    return [philox(i) for i in range(n)]


def test_more_saved_cuda_states_than_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch, devices=2)
    with pytest.warns(RngStateWarning, match=r"4 devices, this machine has 2.*dropped.*2\.\.3"):
        restore_rng_state({"cuda": cuda_states(4)})
    assert [(d, int(t[0])) for d, t in fake.set] == [(0, 0), (1, 1)]
    assert all(t.dtype == torch.uint8 and t.device.type == "cpu" for _, t in fake.set)


def test_fewer_saved_cuda_states_than_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch, devices=3)
    with pytest.warns(RngStateWarning, match=r"1 device, this machine has 3.*1\.\.2 keep"):
        restore_rng_state({"torch.cuda": [philox(7, dtype=torch.int64)]})
    assert [(d, int(t[0])) for d, t in fake.set] == [(0, 7)]
    assert fake.set[0][1].dtype == torch.uint8


def test_single_cuda_tensor_goes_to_the_current_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch, devices=2)  # HF Trainer, distributed: get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore_rng_state({"cuda": philox(3, offset=4)})
    assert [(d, int(t[0])) for d, t in fake.set] == [(1, 3)]


def test_wrong_size_cuda_state_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch, devices=1)
    before = torch.get_rng_state()
    other = torch.Generator().manual_seed(42).get_state()
    with pytest.raises(CorruptCheckpointError, match=r"'cuda'.*8 bytes, expected 16"):
        restore_rng_state({"torch": other, "cuda": [torch.zeros(8, dtype=torch.uint8)]})
    assert fake.set == [] and torch.equal(torch.get_rng_state(), before)


@needs_cuda
def test_cuda_capture_restores_on_cpu_and_cuda(tmp_path: Path) -> None:
    state = capture_rng_state()
    assert len(state["cuda"]) == torch.cuda.device_count()
    assert all(t.device.type == "cpu" for t in state["cuda"])
    want = (torch.rand(3, device="cuda").cpu(), torch.rand(3))
    save_checkpoint(tmp_path / "c.pt", rng=state)
    for location in ("cpu", "cuda"):
        loaded = torch.load(tmp_path / "c.pt", map_location=location, weights_only=True)
        torch.manual_seed(0)
        restore_rng_state(loaded["rng"])
        assert torch.equal(torch.rand(3, device="cuda").cpu(), want[0])
        assert torch.equal(torch.rand(3), want[1])


@needs_cuda
def test_legacy_states_mapped_onto_cuda_restore() -> None:
    state = {
        "torch": torch.get_rng_state().cuda(),
        "torch.cuda": [t.cuda() for t in torch.cuda.get_rng_state_all()],
    }
    want = (torch.rand(3), torch.rand(3, device="cuda").cpu())
    with pytest.raises(TypeError, match="ByteTensor"):
        torch.set_rng_state(state["torch"])
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), want[0])
    assert torch.equal(torch.rand(3, device="cuda").cpu(), want[1])


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("state", "match"),
    [
        (5, "must be a dict"),
        ({}, "no RNG state found"),
        ({"model": 1, "rng_state": {}}, r"no RNG state found(.|\n)*ckpt\['rng_state'\]"),
        ({"torch": "abc"}, r"'torch'.*must be a tensor"),
        ({"torch": torch.rand(5056)}, r"'torch'.*must hold integers"),
        ({"torch": torch.full((5056,), 300)}, r"'torch'.*bytes \(0\.\.255\)"),
        ({"torch": torch.zeros(10, dtype=torch.uint8)}, r"'torch'.*10 bytes, expected 5056"),
        ({"torch": torch.zeros(2, 5056, dtype=torch.uint8)}, r"'torch'.*one-dimensional"),
        ({"torch": torch.empty(5056, dtype=torch.uint8, device="meta")}, r"'torch'.*meta tensor"),
        ({"numpy": ("PCG64", [0] * 624, 0)}, r"'numpy'.*'MT19937'"),
        ({"numpy": ("MT19937", [0] * 10, 0)}, r"'numpy'.*10 words, expected 624"),
        ({"numpy": ("MT19937", [-1] * 624, 0)}, r"'numpy'.*unsigned 32-bit"),
        ({"numpy": ("MT19937", [0] * 624, 999)}, r"'numpy'.*pos must be in"),
        ({"numpy": ("MT19937", [0] * 624, 0, 2, 0.0)}, r"'numpy'.*has_gauss"),
        ({"numpy": ("MT19937", [0] * 624, "x")}, r"'numpy'.*pos must be an integer"),
        ({"numpy": {"bit_generator": "MT19937"}}, r"'numpy'.*a dict must hold"),
        ({"numpy": 3}, r"'numpy'.*np.random.get_state"),
        ({"python": (3, (1, 2), None)}, r"'python'.*wrong size"),
        ({"python": {"state": []}}, r"'python'.*missing 'version'"),
        ({"random_state": "x"}, r"'random_state'.*random.getstate"),
        ({"cuda": "x"}, r"'cuda'.*get_rng_state_all"),
        ({"cuda": [torch.rand(16)]}, r"'cuda'.*device 0's state must hold integers"),
        ({"torch": torch.get_rng_state(), "cpu": torch.get_rng_state()}, "'torch' and 'cpu'"),
        ({"format_version": 99, "torch": torch.get_rng_state()}, "format_version 99"),
    ],
)
def test_malformed_states_raise_clear_errors(state: Any, match: str) -> None:
    with pytest.raises(CorruptCheckpointError, match=match):
        restore_rng_state(state)


def test_malformed_state_changes_no_generator() -> None:
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    good_python = random.Random(1).getstate()
    with pytest.raises(CheckpointError, match="'torch'"):
        restore_rng_state({"python": good_python, "torch": torch.zeros(3, dtype=torch.uint8)})
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


# --------------------------------------------------------------------------- save_checkpoint


def training_objects() -> dict[str, Any]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=10)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}


def test_save_checkpoint_output_loads_with_stock_weights_only(tmp_path: Path) -> None:
    objects = training_objects()
    path = save_checkpoint(
        tmp_path / "ckpt.pt",
        **objects,
        rng=capture_rng_state(),
        step=np.int64(7),
        epoch=2,
        metrics={
            "loss": np.float32(0.25),
            "acc": np.float64(0.5),
            "hist": np.arange(4),
            "flag": np.bool_(True),
            "name": np.str_("x"),
        },
    )
    assert path == tmp_path / "ckpt.pt"
    ckpt = torch.load(path, weights_only=True)  # stock, nothing allowlisted
    assert ckpt["step"] == 7 and type(ckpt["step"]) is int
    assert type(ckpt["metrics"]["loss"]) is float and ckpt["metrics"]["loss"] == 0.25
    assert type(ckpt["metrics"]["flag"]) is bool and type(ckpt["metrics"]["name"]) is str
    assert torch.equal(ckpt["metrics"]["hist"], torch.arange(4))
    for name, obj in objects.items():
        assert str(ckpt[name]) == str(obj.state_dict()), name
    fresh = training_objects()
    fresh["model"].load_state_dict(ckpt["model"])  # _metadata survives: strict load works
    fresh["optimizer"].load_state_dict(ckpt["optimizer"])
    fresh["scheduler"].load_state_dict(ckpt["scheduler"])
    fresh["scaler"].load_state_dict(ckpt["scaler"])
    assert ckpt["model"]._metadata == objects["model"].state_dict()._metadata
    restore_rng_state(ckpt["rng"])


def test_save_checkpoint_converts_a_legacy_rng_dict(tmp_path: Path) -> None:
    np.random.randn()
    state = legacy_state()
    want = draws()
    save_checkpoint(tmp_path / "c.pt", rng=state)
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    restore_rng_state(ckpt["rng"])
    assert draws() == want


class Color(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


class Tagged(torch.Tensor):
    pass


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"metrics": {"fn": len}}, r"cannot save metrics\['fn'\]: it is a builtin_function"),
        (
            {"cfg": {"layers": [1, {"act": object()}]}},
            r"cfg\['layers'\]\[1\]\['act'\]: it is an object",
        ),
        ({"color": Color.RED}, r"cannot save color: it is a .*Color, a subclass of int"),
        ({"point": Point(1, 2)}, r"point: .*tuple subclass(.|\n)*_asdict"),
        ({"tags": {"a", "b"}}, r"tags: it is a set(.|\n)*sorted"),
        ({"m": {1.5j: 1}}, r"m: it has a key of type complex"),
        ({"arr": np.array(["a"], dtype=object)}, r"arr: a numpy array of dtype object"),
        ({"t": torch.ones(2).as_subclass(Tagged)}, r"t: it is a tensor subclass"),
        ({"when": np.datetime64("2024-01-01")}, r"when: a numpy datetime64"),
        ({"blob": b""}, r"blob: it is bytes(.|\n)*frombuffer"),
        ({"raw": np.bytes_(b"ab")}, r"raw: a numpy \|S2 scalar"),
    ],
)
def test_save_checkpoint_refuses_what_would_not_load(
    tmp_path: Path, state: dict[str, Any], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        save_checkpoint(tmp_path / "c.pt", step=1, **state)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file


def test_save_checkpoint_needs_state_and_a_file_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="something to save"):
        save_checkpoint(tmp_path / "c.pt")
    with pytest.raises(UsageError, match="is a directory"):
        save_checkpoint(tmp_path, step=1)


def test_save_checkpoint_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, step=1)
    os.chmod(path, 0o640)
    original = path.read_bytes()

    def torn_save(obj: object, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, step=2)
    assert path.read_bytes() == original  # the old checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # temp file removed
    monkeypatch.undo()

    save_checkpoint(path, step=3)
    assert torch.load(path, weights_only=True) == {"step": 3}
    assert (path.stat().st_mode & 0o777) == 0o640  # an overwrite keeps the file's mode
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None)
@given(value=plain_data)
def test_plain_data_roundtrips_through_stock_weights_only(
    tmp_path_factory: pytest.TempPathFactory, value: Any
) -> None:
    path = tmp_path_factory.mktemp("plain") / "c.pt"
    save_checkpoint(path, value=value)
    assert torch.load(path, weights_only=True) == {"value": value}


# --------------------------------------------------------------------------- load_checkpoint


def test_load_checkpoint_roundtrip(tmp_path: Path) -> None:
    objects = training_objects()
    np.random.randn()
    save_checkpoint(
        tmp_path / "c.pt", **objects, rng=capture_rng_state(), step=4, metrics={"loss": 0.5}
    )
    want = draws()
    ckpt = load_checkpoint(tmp_path / "c.pt", map_location="cpu")
    assert ckpt["step"] == 4 and ckpt["metrics"] == {"loss": 0.5}
    training_objects()["model"].load_state_dict(ckpt["model"])
    restore_rng_state(ckpt["rng"])
    assert draws() == want


def test_load_checkpoint_rejects_a_non_dict(tmp_path: Path) -> None:
    torch.save(torch.ones(2), tmp_path / "t.pt")
    with pytest.raises(CorruptCheckpointError, match="not a dict"):
        load_checkpoint(tmp_path / "t.pt")


def test_load_checkpoint_delegates_to_ckptguard_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        calls.append((f, map_location, kwargs))
        return collections.OrderedDict(step=1)

    monkeypatch.setattr(ckptguard, "load", fake_load, raising=False)
    ckpt = load_checkpoint(tmp_path / "c.pt", map_location="cpu", allow=["x.Y"], mmap=True)
    assert ckpt == {"step": 1} and isinstance(ckpt, dict)
    assert calls == [(tmp_path / "c.pt", "cpu", {"allow": ["x.Y"], "mmap": True})]
