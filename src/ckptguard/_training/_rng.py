"""Portable RNG state: capture it in a weights-only form, read every common spelling back.

``capture_rng_state`` writes the *capture form* (see docs/training.md): only ints, floats,
strings, lists, dicts and CPU tensors, so stock ``torch.load(weights_only=True)`` loads it with
no allowlist. ``restore_rng_state`` reads that form and the legacy ones (``random.getstate()``
and ``np.random.get_state()`` tuples, numpy arrays, tensors moved by ``map_location``, the key
names of Lightning, accelerate and the Hugging Face Trainer). It parses and checks the whole
state first and only then sets the generators, so a malformed state changes nothing.
"""

from __future__ import annotations

import functools
import math
import operator
import random
import struct
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ckptguard._errors import CorruptCheckpointError
from ckptguard._grammar import a_or_an

FORMAT_VERSION = 1
"""Version of the capture form; stored under :data:`FORMAT_KEY`."""

FORMAT_KEY = "format_version"

_MT_KEYS = 624  # words in an MT19937 state (numpy's legacy global RNG)
_WORD = 2**32
_UPPER_BIT = 0x80000000

# torch's CPU generator state (CPUGeneratorImplState, 5056 bytes in torch 2.x): the_initial_seed
# u64, left i32, seeded i32, next u64, state u64[624] (32-bit words), normal_x/_y/_rho f64,
# normal_is_valid i32, padding, next_float_normal_sample f32, its validity flag (a C++ bool).
_TORCH_CPU = struct.Struct("<QiiQ624Qdddi4xfB3x")

_DEGENERATE_HINT = (
    "no generator produces this state: the file is damaged or was edited. Re-capture it with "
    "ckptguard.training.capture_rng_state(), or seed the generators instead of restoring "
    "(random.seed, numpy.random.seed, torch.manual_seed)"
)


class RngStateWarning(UserWarning):
    """Part of an RNG state was not restored on this machine (CUDA missing, fewer devices, ...)."""


# canonical key -> every spelling accepted for it, canonical first. Sources: ckptguard's own
# form; Lightning (`lightning.fabric.utilities.seed._collect_rng_states`: torch, python, numpy,
# torch.cuda); accelerate (`checkpointing.save_accelerator_state`: random_state,
# numpy_random_seed, torch_manual_seed, torch_cuda_manual_seed); the Hugging Face Trainer
# (`_save_rng_state`: python, numpy, cpu, cuda); and names common in hand-written loops.
ALIASES: dict[str, tuple[str, ...]] = {
    "python": (
        "python",
        "random",
        "random_state",
        "python_random_state",
        "python_rng_state",
        "py_random_state",
        "python_state",
        "rand_state",
        "py",
    ),
    "numpy": (
        "numpy",
        "np",
        "numpy_random_seed",
        "numpy_random_state",
        "numpy_rng_state",
        "np_random_state",
        "np_rng_state",
        "numpy_state",
        "np_state",
    ),
    "torch": (
        "torch",
        "cpu",
        "torch_manual_seed",
        "torch_random_state",
        "torch_rng_state",
        "torch_state",
        "torch_cpu",
        "cpu_rng_state",
        "cpu_state",
        "pytorch",
    ),
    "cuda": (
        "cuda",
        "torch.cuda",
        "torch_cuda_manual_seed",
        "torch_cuda",
        "torch_cuda_random_state",
        "torch_cuda_rng_state",
        "cuda_rng_state",
        "cuda_state",
        "pytorch_cuda",
    ),
}

# RNG states of other accelerators: recognised, reported as not restored.
_OTHER_DEVICES = frozenset(
    {
        "mps",
        "xpu",
        "npu",
        "mlu",
        "musa",
        "hpu",
        "sdaa",
        "xla",
        "xm_seed",
        "torch.mps",
        "torch.xpu",
        "torch_mps_manual_seed",
        "torch_xpu_manual_seed",
        "torch_npu_manual_seed",
        "torch_mlu_manual_seed",
        "torch_musa_manual_seed",
        "torch_sdaa_manual_seed",
        "torch_hpu_manual_seed",
    }
)

# Bookkeeping that legacy RNG files carry next to the states (accelerate stores "step").
_METADATA = frozenset({FORMAT_KEY, "step", "epoch", "global_step", "process_index", "rank", "seed"})


def _bad(key: str, problem: str, hint: str | None = None) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"RNG state {key!r}: {problem}", hint=hint)


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{a_or_an(str(value.dtype))} tensor of shape {tuple(value.shape)} on {value.device}"
    name = f"{type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")
    return a_or_an(name)


def import_numpy() -> Any:
    """numpy, or None when it is not installed (numpy is optional)."""
    try:
        import numpy  # noqa: PLC0415
    except ImportError:
        return None
    return numpy


def _is_ndarray(value: object) -> bool:
    return type(value).__module__.startswith("numpy") and hasattr(value, "dtype")


def _int_vector(value: object, key: str, what: str) -> Any:
    """A 1-D int64 CPU tensor from a tensor (any device, integer dtype), ndarray or int list."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise _bad(
                key,
                f"{what} is a meta tensor, which holds no data",
                hint="load the checkpoint with map_location='cpu' (or a real device)",
            )
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise _bad(key, f"{what} must hold integers (a uint8 byte tensor), not {_kind(value)}")
        tensor = value.detach().to("cpu")
    elif _is_ndarray(value):
        np = import_numpy()
        array = np.asarray(value)
        if array.dtype.kind not in "iub":
            raise _bad(key, f"{what} must hold integers, not a numpy {array.dtype} array")
        tensor = torch.from_numpy(array.astype(np.int64))
    elif isinstance(value, (bytes, bytearray)):
        tensor = torch.tensor(list(value), dtype=torch.int64)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not all(type(v) is int or hasattr(v, "__index__") for v in value):
            raise _bad(key, f"{what} must be a sequence of integers")
        try:
            tensor = torch.tensor([operator.index(v) for v in value], dtype=torch.int64)
        except (TypeError, OverflowError, RuntimeError) as exc:
            raise _bad(key, f"{what} must be a sequence of integers ({exc})") from None
    else:
        raise _bad(
            key, f"{what} must be a tensor, numpy array or list of integers, not {_kind(value)}"
        )
    if tensor.dim() != 1:
        raise _bad(key, f"{what} must be one-dimensional, not of shape {tuple(tensor.shape)}")
    return tensor.to(torch.int64).contiguous()


def _byte_tensor(value: object, key: str, what: str, size: int | None = None) -> Any:
    """A contiguous 1-D uint8 CPU tensor, what ``torch.set_rng_state`` insists on."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1:
        if value.device.type == "meta":
            raise _bad(
                key,
                f"{what} is a meta tensor, which holds no data",
                hint="load the checkpoint with map_location='cpu' (or a real device)",
            )
        tensor = value.detach().to("cpu").contiguous()
    else:
        wide = _int_vector(value, key, what)
        if wide.numel() and (int(wide.min()) < 0 or int(wide.max()) > 255):
            raise _bad(
                key,
                f"{what} must hold bytes (0..255), "
                f"found values {int(wide.min())}..{int(wide.max())}",
            )
        tensor = wide.to(torch.uint8)
    if size is not None and tensor.numel() != size:
        raise _bad(key, f"{what} has {tensor.numel()} bytes, expected {size}")
    return tensor


def _as_int(value: Any, key: str, what: str) -> int:
    if isinstance(value, (str, bytes, float)):
        raise _bad(key, f"{what} must be an integer, not {_kind(value)}")
    try:
        return operator.index(value)
    except TypeError:
        raise _bad(key, f"{what} must be an integer, not {_kind(value)}") from None


def _as_float(value: Any, key: str, what: str) -> float:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise _bad(key, f"{what} must be a number, not {_kind(value)}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise _bad(key, f"{what} must be a number, not {_kind(value)}") from None


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _NumpyState:
    keys: Any  # int64 CPU tensor of 624 words
    pos: int
    has_gauss: int
    cached_gaussian: float


@dataclass(frozen=True)
class _Parsed:
    python: tuple[int, tuple[int, ...], float | None] | None
    numpy: _NumpyState | None
    torch_cpu: Any  # uint8 CPU tensor or None
    cuda: list[Any] | None  # uint8 CPU tensors, one per device
    cuda_current_device: bool  # one bare tensor (HF Trainer): it belongs to the current device


def _parse_python(value: object, key: str) -> tuple[int, tuple[int, ...], float | None]:
    if isinstance(value, Mapping):
        missing = [k for k in ("version", "state") if k not in value]
        if missing:
            raise _bad(
                key,
                f"missing {', '.join(map(repr, missing))}",
                hint="expected {'version': int, 'state': [625 ints], 'gauss': float|None}",
            )
        version, internal, gauss = value["version"], value["state"], value.get("gauss")
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 3:
        version, internal, gauss = value
    else:
        raise _bad(
            key,
            f"expected random.getstate()'s (version, state, gauss) or a dict "
            f"with those keys, not {_kind(value)}",
        )
    words = tuple(int(w) for w in _int_vector(internal, key, "the Mersenne Twister state").tolist())
    if len(words) != _MT_KEYS + 1:
        raise _bad(
            key,
            f"the Mersenne Twister state is the wrong size: {len(words)} integers, "
            f"expected {_MT_KEYS + 1} (624 words and the position)",
            hint="expected random.getstate(): (3, 625 ints, None or float)",
        )
    # CPython's setstate silently truncates words to 32 bits; a state it truncates is not one
    # that random.getstate() wrote.
    _check_mt(words[:_MT_KEYS], key, "the Mersenne Twister state", degenerate=False)
    if not 0 <= words[-1] <= _MT_KEYS:
        raise _bad(key, f"the Mersenne Twister position must be in 0..{_MT_KEYS}, not {words[-1]}")
    result = (
        _as_int(version, key, "the version"),
        words,
        None if gauss is None else _finite(_as_float(gauss, key, "gauss"), key, "gauss"),
    )
    try:
        random.Random().setstate(result)  # noqa: S311 - validation only
    except (TypeError, ValueError, OverflowError) as exc:
        raise _bad(
            key,
            f"random.setstate rejects it: {exc}",
            hint="expected random.getstate(): (3, 625 ints, None or float)",
        ) from None
    _check_mt(words[:_MT_KEYS], key, "the Mersenne Twister state")
    return result


def _finite(value: float, key: str, what: str) -> float:
    if not math.isfinite(value):
        raise _bad(key, f"{what} must be a finite number, not {value}", hint=_DEGENERATE_HINT)
    return value


def _check_mt(words: Sequence[int], key: str, what: str, *, degenerate: bool = True) -> None:
    """Refuse MT19937 words outside 32 bits, and (``degenerate``) the states that generate
    only zeros: the next regeneration reads the top bit of word 0 and all of words 1..623, and
    when those are all zero every later word is zero too (the all-zero state is one of them)."""
    for i, w in enumerate(words):
        if not 0 <= w < _WORD:
            raise _bad(
                key, f"{what}: word {i} is {w}, not an unsigned 32-bit word", hint=_DEGENERATE_HINT
            )
    if degenerate and not words[0] & _UPPER_BIT and not any(words[1:]):
        how = (
            "all zero"
            if not words[0]
            else "zero but for the low bits of word 0, which the generator never reads again"
        )
        raise _bad(
            key,
            f"{what} is degenerate ({how}): the Mersenne Twister would return "
            "only zeros from now on",
            hint=_DEGENERATE_HINT,
        )


def _parse_numpy(value: object, key: str) -> _NumpyState:
    has_gauss: object = 0
    cached: object = 0.0
    if isinstance(value, Mapping):
        name = value.get("bit_generator")
        if "keys" in value:  # the capture form
            keys, pos = value["keys"], value.get("pos")
            has_gauss, cached = value.get("has_gauss", 0), value.get("cached_gaussian", 0.0)
        elif isinstance(value.get("state"), Mapping):  # np.random.get_state(legacy=False)
            keys, pos = value["state"].get("key"), value["state"].get("pos")
            has_gauss, cached = value.get("has_gauss", 0), value.get("gauss", 0.0)
        else:
            raise _bad(
                key,
                "a dict must hold 'bit_generator', 'keys', 'pos', 'has_gauss' and "
                "'cached_gaussian' (or numpy's {'state': {'key', 'pos'}} form)",
            )
        if keys is None or pos is None:
            raise _bad(key, "missing the MT19937 'keys' or 'pos'")
    elif (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) in (3, 5)
    ):
        name, keys, pos = value[0], value[1], value[2]
        if len(value) == 5:
            has_gauss, cached = value[3], value[4]
    else:
        raise _bad(
            key,
            f"expected np.random.get_state()'s tuple ('MT19937', keys, pos, "
            f"has_gauss, cached_gaussian) or a dict, not {_kind(value)}",
        )
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str) or name != "MT19937":
        raise _bad(
            key, f"bit generator must be 'MT19937' (numpy's legacy global RNG), not {name!r}"
        )
    words = _int_vector(keys, key, "the MT19937 keys")
    if words.numel() != _MT_KEYS:
        raise _bad(key, f"the MT19937 keys hold {words.numel()} words, expected {_MT_KEYS}")
    if words.numel() and (int(words.min()) < 0 or int(words.max()) >= 2**32):
        raise _bad(key, "the MT19937 keys must be unsigned 32-bit words")
    state = _NumpyState(
        keys=words,
        pos=_as_int(pos, key, "pos"),
        has_gauss=_as_int(has_gauss, key, "has_gauss"),
        cached_gaussian=_as_float(cached, key, "cached_gaussian"),
    )
    if not 0 <= state.pos <= _MT_KEYS:
        raise _bad(key, f"pos must be in 0..{_MT_KEYS}, not {state.pos}")
    if state.has_gauss not in (0, 1):
        raise _bad(key, f"has_gauss must be 0 or 1, not {state.has_gauss}")
    _finite(state.cached_gaussian, key, "cached_gaussian")
    _check_mt(words.tolist(), key, "the MT19937 keys")
    return state


def _check_torch_cpu(tensor: Any, key: str) -> None:
    """What torch's CPU generator reads from its state, checked field by field.

    torch itself checks only ``seeded``, ``left`` in 1..624 and ``next`` <= 624: it truncates
    64-bit words to 32 bits, takes a flag byte other than 0/1 as a C++ bool (undefined
    behaviour), and with ``left + next > 625`` reads past the end of its 624-word array on the
    next draws.
    """
    if tensor.numel() == _TORCH_CPU.size:  # else another torch's layout: its own check only
        _check_torch_cpu_fields(tensor, key)
    try:
        torch.Generator().set_state(tensor)  # whatever else this torch checks; nothing global
    except (RuntimeError, TypeError, ValueError) as exc:
        raise _bad(
            key, f"torch rejects the torch CPU generator state: {exc}", hint=_DEGENERATE_HINT
        ) from None


def _check_torch_cpu_fields(tensor: Any, key: str) -> None:
    (_seed, left, seeded, next_, *rest) = _TORCH_CPU.unpack(bytes(tensor.tolist()))
    words, (normal_x, _normal_y, normal_rho, normal_valid, next_float, next_float_valid) = (
        rest[:_MT_KEYS],
        rest[_MT_KEYS:],
    )
    what = "the torch CPU generator state"
    if seeded != 1:
        raise _bad(key, f"{what}: 'seeded' is {seeded}, not 1", hint=_DEGENERATE_HINT)
    if not 1 <= left <= _MT_KEYS or not 0 <= next_ <= _MT_KEYS or left + next_ > _MT_KEYS + 1:
        raise _bad(
            key,
            f"{what}: position left={left}, next={next_} is not one the generator "
            f"reaches (1 <= left, next <= 624, left + next <= 625); the next draws "
            f"would read past its state",
            hint=_DEGENERATE_HINT,
        )
    if normal_valid not in (0, 1) or next_float_valid not in (0, 1):
        raise _bad(
            key,
            f"{what}: the cached normal sample flags must be 0 or 1, not "
            f"{normal_valid} and {next_float_valid}",
            hint=_DEGENERATE_HINT,
        )
    if normal_valid:
        _finite(normal_x, key, f"{what}'s cached normal_x")
        _finite(normal_rho, key, f"{what}'s cached normal_rho")
    if next_float_valid:
        _finite(next_float, key, f"{what}'s cached float normal sample")
    _check_mt(words, key, f"{what}'s Mersenne Twister")


_PHILOX = struct.Struct("<Qq")  # CUDA (Philox) generator state: seed u64, offset i64


def _check_cuda(tensor: Any, key: str, what: str) -> None:
    """torch's CUDA generator state: 16 bytes (seed, offset) or 8 (seed only); the offset is a
    non-negative multiple of 4 (torch refuses others, after it has set the seed)."""
    if tensor.numel() == _PHILOX.size:
        _seed, offset = _PHILOX.unpack(bytes(tensor.tolist()))
        if offset < 0 or offset % 4:
            raise _bad(
                key,
                f"{what}: the Philox offset {offset} is not a non-negative multiple of 4",
                hint=_DEGENERATE_HINT,
            )
    elif tensor.numel() != _PHILOX.size // 2:
        raise _bad(
            key,
            f"{what} has {tensor.numel()} bytes, expected {_PHILOX.size}",
            hint="expected torch.cuda.get_rng_state_all(): one 16-byte uint8 tensor per device",
        )


def _parse_cuda(value: object, key: str) -> tuple[list[Any], bool]:
    states, current = _cuda_tensors(value, key)
    for i, tensor in enumerate(states):
        _check_cuda(tensor, key, "the CUDA generator state" if current else f"device {i}'s state")
    return states, current


def _cuda_tensors(value: object, key: str) -> tuple[list[Any], bool]:
    if isinstance(value, torch.Tensor):
        if value.dim() == 1:  # torch.cuda.get_rng_state(): the current device's
            return [_byte_tensor(value, key, "the CUDA generator state")], True
        if value.dim() == 2:  # a stacked get_rng_state_all()
            return [_byte_tensor(row, key, f"row {i}") for i, row in enumerate(value)], False
        raise _bad(key, f"expected a list of per-device byte tensors, not {_kind(value)}")
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        if value and all(isinstance(v, int) for v in value):  # one state as a list of ints
            return [_byte_tensor(value, key, "the CUDA generator state")], True
        return [_byte_tensor(v, key, f"device {i}'s state") for i, v in enumerate(value)], False
    raise _bad(
        key, f"expected torch.cuda.get_rng_state_all()'s list of byte tensors, not {_kind(value)}"
    )


def _find(state: Mapping[Any, Any], canonical: str) -> tuple[str, Any] | None:
    present = [k for k in ALIASES[canonical] if k in state]
    if len(present) > 1:
        raise CorruptCheckpointError(
            f"RNG state holds the {canonical} state twice, under {present[0]!r} and "
            f"{present[1]!r}; keep one"
        )
    return (present[0], state[present[0]]) if present else None


def _guess_kind(value: object) -> str | None:
    """Which generator a bare state (not a dict of states) belongs to, by its shape."""
    if isinstance(value, (tuple, list)) and value:
        if len(value) == 5 and value[0] == "MT19937":
            return "numpy"  # numpy.random.get_state()
        if len(value) == 3 and value[0] == 3 and isinstance(value[1], (tuple, list)):
            return "python"  # random.getstate()
        if all(isinstance(v, torch.Tensor) for v in value):
            return "cuda"  # torch.cuda.get_rng_state_all()
        return None
    if isinstance(value, Mapping) and "bit_generator" in value and "state" in value:
        return "numpy"  # Generator.bit_generator.state
    if isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
        return "torch"  # torch.get_rng_state()
    return None


def _advice(state: Mapping[Any, Any]) -> str | None:
    """A restore_rng_state call that works on this checkpoint, from the keys that hold RNG
    states: a nested dict of states is passed as it is, bare states under their generator."""
    known = {alias for aliases in ALIASES.values() for alias in aliases}
    parts: dict[str, str] = {}
    nested = None  # a dict under an RNG-looking key: the RNG part, if nothing better is found
    for key in state:
        if not isinstance(key, str) or not ("rng" in key.lower() or "random" in key.lower()):
            continue
        value = state[key]
        if isinstance(value, Mapping):
            if any(k in value for k in known):
                return f"restore_rng_state(ckpt[{key!r}])"
            nested = nested or f"restore_rng_state(ckpt[{key!r}])"
            continue
        kind = _guess_kind(value)
        if kind is not None and kind not in parts:
            parts[kind] = f"ckpt[{key!r}]"
    if not parts:
        return nested
    return "restore_rng_state({" + ", ".join(f"{k!r}: {v}" for k, v in parts.items()) + "})"


def _parse(state: object) -> _Parsed:
    if not isinstance(state, Mapping):
        raise CorruptCheckpointError(
            f"an RNG state must be a dict (from capture_rng_state()), not {_kind(state)}"
        )
    if FORMAT_KEY in state:
        version = _as_int(state[FORMAT_KEY], FORMAT_KEY, "the format version")
        if version > FORMAT_VERSION:
            raise CorruptCheckpointError(
                f"RNG state has format_version {version}; this ckptguard reads up to "
                f"{FORMAT_VERSION}",
                hint="upgrade ckptguard",
            )
    found = {name: _find(state, name) for name in ALIASES}
    known = {alias for aliases in ALIASES.values() for alias in aliases}
    others = sorted(str(k) for k in state if k in _OTHER_DEVICES)
    unknown = sorted(
        repr(k) for k in state if k not in known and k not in _OTHER_DEVICES and k not in _METADATA
    )
    if all(v is None for v in found.values()) and not others:
        advice = _advice(state)
        raise CorruptCheckpointError(
            "no RNG state found: expected at least one of the keys "
            + ", ".join(repr(aliases[0]) for aliases in ALIASES.values())
            + (f"; found {', '.join(unknown[:8])}" if unknown else ""),
            hint=(
                f"pass the RNG part of the checkpoint: {advice}"
                if advice
                else "capture it with ckptguard.training.capture_rng_state()"
            ),
        )
    if others:
        warnings.warn(
            f"RNG states for {', '.join(others)} are not restored (ckptguard restores "
            f"Python, numpy, torch CPU and CUDA)",
            RngStateWarning,
            stacklevel=3,
        )
    if unknown:
        warnings.warn(
            f"RNG state keys not recognised and ignored: {', '.join(unknown)}",
            RngStateWarning,
            stacklevel=3,
        )
    python = found["python"]
    numpy = found["numpy"]
    cpu = found["torch"]
    cuda = found["cuda"]
    cuda_states, current = (
        (None, False) if cuda is None or cuda[1] is None else _parse_cuda(cuda[1], cuda[0])
    )
    torch_cpu = None
    if cpu is not None:
        torch_cpu = _byte_tensor(
            cpu[1], cpu[0], "the torch CPU generator state", size=torch.get_rng_state().numel()
        )
        _check_torch_cpu(torch_cpu, cpu[0])
    return _Parsed(
        python=None if python is None else _parse_python(python[1], python[0]),
        numpy=None if numpy is None else _parse_numpy(numpy[1], numpy[0]),
        torch_cpu=torch_cpu,
        cuda=cuda_states,
        cuda_current_device=current,
    )


# --------------------------------------------------------------------------- public


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state in a form stock ``torch.load(weights_only=True)`` accepts.

    Keys: ``format_version`` (int), ``python`` ({version, state, gauss}), ``numpy`` (only when
    numpy is installed: {bit_generator, keys (int64 tensor), pos, has_gauss, cached_gaussian}),
    ``torch`` (the CPU generator's uint8 tensor) and ``cuda`` (only when CUDA is available: one
    CPU uint8 tensor per device). Capturing with CUDA available initialises CUDA.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        FORMAT_KEY: FORMAT_VERSION,
        "python": {
            "version": int(version),
            "state": [int(w) for w in internal],
            "gauss": None if gauss is None else float(gauss),
        },
    }
    np = import_numpy()
    if np is not None:
        legacy = np.random.get_state()
        if isinstance(legacy, tuple):  # always, for the global RandomState (MT19937)
            name, keys, pos, has_gauss, cached = legacy
            state["numpy"] = {
                "bit_generator": str(name),
                "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            }
    state["torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        state["cuda"] = [t.to("cpu") for t in torch.cuda.get_rng_state_all()]
    return state


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _devices(first: int, last: int) -> str:
    return f"device {first}" if first == last else f"devices {first}..{last}"


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set the global RNGs from ``state``: the capture form or a legacy one.

    The whole state is checked before any generator changes; a malformed one raises
    :class:`~ckptguard.CorruptCheckpointError` naming the key. Parts this machine cannot
    restore (CUDA states without CUDA, states for more devices than it has, numpy states
    without numpy, other accelerators) are skipped with a :class:`RngStateWarning`.
    """
    parsed = _parse(state)

    np_state = None
    if parsed.numpy is not None:
        np = import_numpy()
        if np is None:
            warnings.warn(
                "the numpy RNG state is not restored: numpy is not installed",
                RngStateWarning,
                stacklevel=2,
            )
        else:
            ns = parsed.numpy
            np_state = (
                "MT19937",
                ns.keys.numpy().astype(np.uint32),
                ns.pos,
                ns.has_gauss,
                ns.cached_gaussian,
            )
            try:
                np.random.RandomState().set_state(np_state)
            except (TypeError, ValueError) as exc:
                raise _bad("numpy", f"numpy rejects it: {exc}") from None

    cuda_plan: list[tuple[int, Any]] = []
    if parsed.cuda:
        saved = len(parsed.cuda)
        if not torch.cuda.is_available():
            warnings.warn(
                f"{_plural(saved, 'CUDA RNG state')} not restored: CUDA is not available on "
                "this machine (the CPU, numpy and Python states were restored)",
                RngStateWarning,
                stacklevel=2,
            )
        else:
            torch.cuda.init()  # type: ignore[no-untyped-call]  # errors surface now, not lazily
            if parsed.cuda_current_device:
                cuda_plan = [(torch.cuda.current_device(), parsed.cuda[0])]
            else:
                present = torch.cuda.device_count()
                cuda_plan = list(enumerate(parsed.cuda[:present]))
                if saved > present:
                    warnings.warn(
                        f"the checkpoint has CUDA RNG states for {_plural(saved, 'device')}, "
                        f"this machine has {present}: restored {_devices(0, present - 1)}, "
                        f"dropped the states of {_devices(present, saved - 1)}",
                        RngStateWarning,
                        stacklevel=2,
                    )
                elif saved < present:
                    warnings.warn(
                        f"the checkpoint has CUDA RNG states for {_plural(saved, 'device')}, "
                        f"this machine has {present}: {_devices(saved, present - 1)} "
                        "keep their current state",
                        RngStateWarning,
                        stacklevel=2,
                    )
            for index, tensor in cuda_plan:
                expected = torch.cuda.get_rng_state(index).numel()
                if tensor.numel() != expected:
                    raise _bad(
                        "cuda",
                        f"device {index}'s state has {tensor.numel()} bytes, expected {expected}",
                    )

    # Everything is checked: set the generators. Should one still refuse (a torch that checks
    # more than this version), the ones already set are put back, so nothing changes.
    steps: list[tuple[Callable[[], object], Callable[[], object]]] = []
    if parsed.python is not None:
        steps.append(
            (
                functools.partial(random.setstate, parsed.python),
                functools.partial(random.setstate, random.getstate()),
            )
        )
    if np_state is not None:
        np_random = import_numpy().random
        steps.append(
            (
                functools.partial(np_random.set_state, np_state),
                functools.partial(np_random.set_state, np_random.get_state()),
            )
        )
    if parsed.torch_cpu is not None:
        steps.append(
            (
                functools.partial(torch.set_rng_state, parsed.torch_cpu),
                functools.partial(torch.set_rng_state, torch.get_rng_state()),
            )
        )
    for index, tensor in cuda_plan:
        steps.append(
            (
                functools.partial(torch.cuda.set_rng_state, tensor, index),
                functools.partial(torch.cuda.set_rng_state, torch.cuda.get_rng_state(index), index),
            )
        )
    done: list[Callable[[], object]] = []
    for apply, undo in steps:
        try:
            apply()
        except (RuntimeError, TypeError, ValueError) as exc:
            for put_back in reversed(done):
                put_back()
            raise CorruptCheckpointError(
                f"RNG state refused while restoring it, nothing changed: {exc}",
                hint=_DEGENERATE_HINT,
            ) from None
        done.append(undo)
