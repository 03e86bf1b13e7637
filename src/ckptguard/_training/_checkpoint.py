"""Training checkpoints that stock weights-only loading accepts, written atomically."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ckptguard._errors import CorruptCheckpointError, UsageError
from ckptguard._grammar import a_or_an
from ckptguard._training._rng import import_numpy

_MAX_DEPTH = 200

# Exact types stock torch.load(weights_only=True) rebuilds on every torch >= 2.6 without an
# allowlist. Subclasses (IntEnum, namedtuple, np.float64 ...) pickle as their own class and
# would need one, so they are converted or refused, never written. bytes are left out: under
# torch.save's pickle protocol 2, b"" pickles as GLOBAL builtins.bytes, which is refused.
_ATOMS: tuple[type, ...] = (type(None), bool, int, float, str)
_TORCH_ATOMS: tuple[type, ...] = (torch.Size, torch.dtype, torch.device)
_PLAIN = "numbers, strings, tensors, and lists, tuples and dicts of those"


def _refuse(where: str, problem: str, hint: str | None = None) -> UsageError:
    return UsageError(
        f"cannot save {where}: {problem}; stock torch.load(weights_only=True) could not load it",
        hint=hint or f"store plain data ({_PLAIN}), or an object with state_dict()",
    )


def _type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _from_numpy(value: Any, where: str, depth: int) -> Any:
    np = import_numpy()
    if isinstance(value, np.generic):
        item = value.item()
        if type(item) not in _ATOMS:  # datetime64, void, object scalars ...
            raise _refuse(where, f"a numpy {value.dtype} scalar has no plain form")
        return item
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise _refuse(
                where,
                f"a numpy array of dtype {value.dtype} has no tensor form",
                hint="convert it to a numeric array, a list or a string yourself",
            )
        array = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        try:
            return torch.from_numpy(array.copy())
        except TypeError as exc:
            raise _refuse(
                where,
                f"a numpy {value.dtype} array has no tensor form ({exc})",
                hint="convert it to a supported dtype first",
            ) from None
    raise _refuse(where, f"it is {a_or_an(_type_name(value))} object")


def _key(key: Any, where: str) -> Any:
    if type(key) in _ATOMS or type(key) in _TORCH_ATOMS:
        return key
    if type(key) is tuple:
        return tuple(_key(k, where) for k in key)
    if type(key).__module__.startswith("numpy"):
        item = getattr(key, "item", lambda: key)()
        if type(item) in _ATOMS:
            return item
    raise _refuse(
        where, f"it has a key of type {_type_name(key)} ({key!r})", hint="use str or int keys"
    )


def to_plain(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as data stock weights-only loading rebuilds, or :class:`UsageError` naming
    ``where`` (the key path). numpy scalars become Python numbers, numpy arrays tensors,
    objects with ``state_dict()`` their state dict, mappings dicts."""
    if depth > _MAX_DEPTH:
        raise _refuse(where, f"it is nested more than {_MAX_DEPTH} levels deep (a cycle?)")
    kind = type(value)
    if kind in _ATOMS or kind in _TORCH_ATOMS:
        return value
    if isinstance(value, torch.Tensor):
        if kind is torch.nn.Parameter:
            return value
        if kind is not torch.Tensor:
            raise _refuse(
                where,
                f"it is a tensor subclass ({_type_name(value)})",
                hint="save a plain tensor (e.g. tensor.as_subclass(torch.Tensor))",
            )
        return value.detach() if value.requires_grad else value
    if kind.__module__.startswith("numpy"):
        return _from_numpy(value, where, depth)
    if kind is dict or kind is OrderedDict:
        out: dict[Any, Any] = kind()
        for k, v in value.items():
            out[_key(k, where)] = to_plain(v, f"{where}[{k!r}]", depth + 1)
        metadata = getattr(value, "_metadata", None)  # nn.Module.state_dict() versions
        if metadata is not None:
            out._metadata = to_plain(metadata, f"{where}._metadata", depth + 1)  # type: ignore[attr-defined]
        return out
    if kind is list:
        return [to_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind is tuple:
        return tuple(to_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    state_dict = getattr(value, "state_dict", None)
    if callable(state_dict) and not isinstance(value, type):
        return to_plain(state_dict(), f"{where}.state_dict()", depth + 1)
    if isinstance(value, Mapping):
        return to_plain(dict(value), where, depth)
    if isinstance(value, tuple):  # namedtuple and other tuple subclasses
        raise _refuse(
            where,
            f"it is {a_or_an(_type_name(value))} (a tuple subclass)",
            hint="pass tuple(value), or value._asdict() for a namedtuple",
        )
    if isinstance(value, (bytes, bytearray)):
        raise _refuse(
            where,
            f"it is {_type_name(value)} (an empty one would not load)",
            hint="store a str, or a uint8 tensor: "
            "torch.frombuffer(bytearray(value), dtype=torch.uint8)",
        )
    if isinstance(value, (set, frozenset)):
        raise _refuse(
            where, f"it is {a_or_an(_type_name(value))}", hint="pass sorted(value) or list(value)"
        )
    if isinstance(value, (int, float, str)):  # IntEnum, str subclasses ...
        base = next(t for t in (bool, int, float, str) if isinstance(value, t))
        raise _refuse(
            where,
            f"it is {a_or_an(_type_name(value))}, a subclass of {base.__name__}",
            hint="convert it to the plain type, e.g. int(value) or value.value",
        )
    raise _refuse(where, f"it is {a_or_an(_type_name(value))} object")


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it the racy way
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike[str], **state: Any) -> Path:
    """Write ``state`` atomically as a checkpoint stock ``torch.load(weights_only=True)`` loads.

    Objects with ``state_dict()`` (model, optimizer, scheduler, scaler) are saved as their
    state dicts; numpy scalars become Python numbers and numpy arrays tensors; anything else
    that is not plain data raises :class:`~ckptguard.UsageError` naming its key path, before
    a byte is written. Pass RNG state as ``rng=capture_rng_state()``. The file is written to
    a temporary file in the same directory, fsynced and renamed over ``path``: readers see
    the old checkpoint or the new one, never half of one. Returns the path written.
    """
    target = Path(os.fspath(path))
    if not state:
        raise UsageError(
            "save_checkpoint needs something to save",
            hint="save_checkpoint(path, model=model, optimizer=opt, step=step)",
        )
    if target.is_dir():
        raise UsageError(f"{target} is a directory; save_checkpoint needs a file path")
    plain = {name: to_plain(value, name) for name, value in state.items()}

    directory = target.parent
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            torch.save(plain, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)
    return target


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Load a training checkpoint through :func:`ckptguard.load` (weights-only, policy-checked).

    ``kwargs`` go to ``ckptguard.load`` (``allow=``, ``policy=``, ``mmap=`` ...). RNG tensors
    may land on ``map_location``'s device; :func:`restore_rng_state` moves them back.
    """
    import ckptguard  # noqa: PLC0415 - the package imports no torch; this module does

    loaded = ckptguard.load(path, map_location=map_location, **kwargs)
    if not isinstance(loaded, Mapping):
        raise CorruptCheckpointError(
            f"not a training checkpoint: it holds {a_or_an(_type_name(loaded))}, not a dict",
            path=os.fspath(path),
        )
    return loaded if isinstance(loaded, dict) else dict(loaded)
