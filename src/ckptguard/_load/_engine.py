"""The unpickler: CPython's C unpickler whose every import goes through a per-call list.

:func:`build_unpickler` makes a fresh ``pickle.Unpickler`` subclass for one load. Its
:meth:`find_class` admits exactly the globals the scan of *this* file saw and the policy
approved, by the name the scan resolved them to; nothing else can be imported, whatever the
bytes say. For the approved names PyTorch's own unpickler maps specially, it returns what
``torch.load`` returns: a storage type for ``*Storage`` names, and (from
:mod:`._layout`) rebuild helpers that first check the tensor's layout.

Why this engine and not torch's weights-only unpickler (see docs/load.md for the figures):
the C unpickler is about 3x faster on pickle-heavy files, loads what the weights-only
unpickler cannot (dict/list subclasses, non-empty defaultdicts, protocol >= 3 bytes), and
needs no process-wide ``add_safe_globals`` state, so concurrent loads cannot interfere.
"""

from __future__ import annotations

import importlib
import pickle
import types
from collections.abc import Iterable, Mapping
from typing import Any

from ckptguard._errors import CheckpointError, UnsafeCheckpointError
from ckptguard._load._registry import resolves_to

# torch.load renames these modules before calling find_class (torch.serialization._load).
_TORCH_MODULE_RENAMES = {"torch.tensor": "torch._tensor"}
# numpy 2 moved numpy.core to numpy._core; pickles name either. Both names are vetted.
_NUMPY_CORE = ("numpy.core", "numpy._core")
_NOTHING = object()


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


def build_unpickler(
    approved: Mapping[tuple[str, str], tuple[str, str]],
    *,
    path: str,
    overrides: Iterable[tuple[Any, Any]],
    expected: Mapping[str, Any] | None = None,
) -> type[pickle.Unpickler]:
    """An unpickler class that admits only ``approved`` globals.

    ``approved`` maps each (module, name) as written in the pickle to the (module, name) the
    scan resolved it to (protocol < 3 ``fix_imports`` renames applied). ``overrides`` maps
    an object (a function of PyTorch's, e.g. ``torch._utils._rebuild_tensor_v2``) to what to
    return in its place, whatever name the pickle reached it by. ``expected`` maps a resolved
    (module, name) to the one object it must import as (names approved because the program
    registered that object with torch's ``add_safe_globals``).
    """
    lookup = dict(approved)
    must_be = dict(expected or {})
    replace = {id(real): (real, stand_in) for real, stand_in in overrides}

    class Unpickler(pickle.Unpickler):
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
            expect = must_be.get(f"{target[0]}.{target[1]}", _NOTHING)
            if expect is not _NOTHING:
                # approved because the program registered this object with torch: nothing is
                # imported; the name must reach that very object in the modules loaded now
                if resolves_to(target[0], target[1]) is not expect:
                    raise UnsafeCheckpointError(
                        f"{target[0]}.{target[1]} was allowed because the program registered "
                        "an object of that name with torch.serialization.add_safe_globals, but "
                        "the name does not reach that object: refused",
                        path=path,
                        hint=f"ckptguard scan {path}",
                    )
                return expect
            mod, attr = target
            mod = _TORCH_MODULE_RENAMES.get(mod, mod)
            if "Storage" in attr:
                storage_type = _storage_type(attr)
                if storage_type is not None:
                    return storage_type
            try:
                obj = _resolve(mod, attr)
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
            swap = replace.get(id(obj))
            return swap[1] if swap is not None and swap[0] is obj else obj

    return Unpickler


def _storage_type(name: str) -> Any:
    """What torch.load's unpickler returns for a ``*Storage`` global: a dtype holder."""
    from ckptguard._load._torch import serialization  # noqa: PLC0415

    try:
        return serialization().StorageType(name)
    except KeyError:  # UntypedStorage, TypedStorage: the class itself
        return None
