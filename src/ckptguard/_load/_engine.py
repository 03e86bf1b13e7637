"""The unpickling engine: CPython's C unpickler whose every import goes through a per-call list.

``torch.load(..., pickle_module=engine, weights_only=False)`` subclasses ``engine.Unpickler``
and calls ``engine.load``; both resolve globals only through :meth:`find_class` below, which
admits exactly the globals the scan of *this* file saw and the policy approved, by the name
the scan resolved them to. Nothing else can be imported, whatever the bytes say: a pickle that
changed after the scan cannot reach a global the scan did not approve. For zip checkpoints the
unpickler also checks that the pickle torch hands it is byte for byte the one that was scanned.

Why this engine and not torch's weights-only unpickler (see docs/load.md for the figures):
the C unpickler is about 3x faster on pickle-heavy files, loads what the weights-only
unpickler cannot (dict/list subclasses, non-empty defaultdicts, protocol >= 3 bytes), and
needs no process-wide ``add_safe_globals`` state, so concurrent loads cannot interfere.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import types
from collections.abc import Mapping
from typing import Any

from ckptguard._errors import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError

# torch.load renames these modules before calling find_class (torch.serialization._load).
_TORCH_MODULE_RENAMES = {"torch.tensor": "torch._tensor"}
# numpy 2 moved numpy.core to numpy._core; pickles name either. Both names are vetted.
_NUMPY_CORE = ("numpy.core", "numpy._core")


def _numpy_alias(module: str) -> str | None:
    for old, new in (_NUMPY_CORE, _NUMPY_CORE[::-1]):
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return None


def _import(module: str) -> types.ModuleType:
    """Import an approved module; numpy's core module under whichever name this numpy has."""
    alias = _numpy_alias(module)
    if alias is not None and module.startswith("numpy.core"):
        # numpy >= 2 warns on every numpy.core access; prefer numpy._core where it exists.
        try:
            return importlib.import_module(alias)
        except ImportError:
            return importlib.import_module(module)
    try:
        return importlib.import_module(module)
    except ImportError:
        if alias is None:
            raise
        return importlib.import_module(alias)


def _resolve(module: str, name: str) -> Any:
    obj: Any = _import(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def build_engine(
    approved: Mapping[tuple[str, str], tuple[str, str]],
    *,
    path: str,
    pickle_digest: bytes | None,
) -> types.SimpleNamespace:
    """A pickle module for ``torch.load`` that admits only ``approved`` globals.

    ``approved`` maps each (module, name) as written in the pickle to the (module, name) the
    scan resolved it to (protocol < 3 ``fix_imports`` renames applied). ``pickle_digest`` is
    the BLAKE2b digest of the zip checkpoint's data.pkl as scanned, or None when the bytes
    being unpickled are the scanned buffer itself (legacy files are loaded from memory).
    """
    lookup = dict(approved)
    for (module, name), target in approved.items():
        for old, new in _TORCH_MODULE_RENAMES.items():
            if module == old:
                lookup.setdefault((new, name), (new, target[1]))

    class Unpickler(pickle.Unpickler):
        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            if pickle_digest is not None:
                _check_digest(file, pickle_digest, path)
            super().__init__(file, *args, **kwargs)

        def find_class(self, module: str, name: str) -> Any:
            target = lookup.get((module, name))
            if target is None:
                raise UnsafeCheckpointError(
                    f"the pickle asked for {module}.{name}, which the scan of this file did not "
                    "approve (the file changed while it was being loaded, or it is crafted to "
                    "read differently): refused",
                    path=path,
                    hint=f"ckptguard scan {path}",
                )
            try:
                return _resolve(*target)
            except ImportError as exc:
                raise CheckpointError(
                    f"the file needs {target[0]}.{target[1]}, but module "
                    f"{exc.name or target[0]!r} is not installed here",
                    path=path,
                    hint=(
                        f"install the package that provides it, or rewrite the file as plain "
                        f"data once: ckptguard convert {path} OUT.pt"
                    ),
                ) from exc
            except AttributeError as exc:
                raise CheckpointError(
                    f"the file needs {target[0]}.{target[1]}, which the installed "
                    f"{target[0]} does not have ({exc})",
                    path=path,
                    hint=f"install the version that wrote the file, or: ckptguard convert {path} "
                    "OUT.pt",
                ) from exc

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(
        __name__="ckptguard._load._engine", Unpickler=Unpickler, load=load,
        UnpicklingError=pickle.UnpicklingError,
    )  # fmt: skip


def _check_digest(file: Any, expected: bytes, path: str) -> None:
    if not isinstance(file, io.BytesIO):
        raise CorruptCheckpointError(
            "torch handed the unpickler a stream that is not the archive's data.pkl record",
            path=path,
        )
    with file.getbuffer() as view:
        actual = hashlib.blake2b(view, digest_size=32).digest()
    if actual != expected:
        raise CorruptCheckpointError(
            "the pickle PyTorch read from the archive is not the one ckptguard scanned (the "
            "file changed during loading, or zip readers disagree on its content): refused",
            path=path,
            hint=f"ckptguard scan {path}",
        )
