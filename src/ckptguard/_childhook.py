"""The start-up half of the child-process guard: small, imported by ckptguard's sitecustomize.

In a child process started under ``ckptguard run`` (or ``patched(children=True)``),
``$CKPTGUARD_GUARD`` describes the guard. :func:`arm_from_env` costs a JSON parse: it imports
nothing of ckptguard's loading machinery until the child imports ``torch``; the moment
``torch`` has finished importing, the guard is installed (:mod:`ckptguard._load._children`
builds the policy, :func:`ckptguard.install` routes ``torch.load``). Fail closed: a guard
that cannot be read or installed makes ``import torch`` fail, with the reason.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import types
from collections.abc import Callable, Sequence

from ckptguard._guardenv import ENV
from ckptguard._guardenv import VERSION as _VERSION


def _blocked(why: str, name: str) -> ImportError:
    return ImportError(
        f"ckptguard: torch is blocked in this process: ${ENV} asks for the checkpoint guard, "
        f"but it cannot be installed ({why}). Unset {ENV} to run without the guard, or "
        "install ckptguard in this interpreter",
        name=name,
    )


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then()`` the moment ``torch`` has finished importing (a post-import hook)."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then = then
        self.busy = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torch" or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is None:
            return None  # not installed: the import fails as it would
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            raise _blocked(f"torch's loader ({type(loader).__name__}) cannot be followed", fullname)
        run = loader.exec_module
        finder = self

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            try:
                finder.then()
            except Exception as exc:  # the import fails (torch leaves sys.modules): closed
                raise _blocked(f"{type(exc).__name__}: {exc}", fullname) from exc

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class _Refuse(importlib.abc.MetaPathFinder):
    """Fail closed: ``import torch`` raises, saying why the guard could not be installed."""

    def __init__(self, why: str) -> None:
        self.why = why

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torch" or fullname.startswith("torch."):
            raise _blocked(self.why, fullname)
        return None


def refuse_torch(why: str) -> None:
    """Make ``import torch`` fail in this process (the guard was asked for and cannot be)."""
    sys.meta_path.insert(0, _Refuse(why))


def _install(raw: str) -> None:
    # the loading machinery (and torch) only now: this module is imported at every start-up;
    # neither module imports this one (one way: _childhook -> _load)
    from ckptguard._load._children import parse_settings  # noqa: PLC0415
    from ckptguard._load._patch import install  # noqa: PLC0415

    policy, restore = parse_settings(raw)  # raises: the child stops before running anything
    install(policy=policy, restore_types=restore)


def install_from_env() -> None:
    """The ``multiprocessing`` children's prefix (:mod:`ckptguard._load._children`): install
    the guard now (torch is imported here)."""
    raw = os.environ.get(ENV)
    if raw:
        _install(raw)


def arm_from_env() -> None:
    """In a child: install the guard described by ``$CKPTGUARD_GUARD`` once torch is imported
    (now, if it already is)."""
    raw = os.environ.get(ENV)
    if not raw:
        return
    try:
        doc = json.loads(raw)
        ok = isinstance(doc, dict) and doc.get("version") == _VERSION
    except ValueError:
        ok = False
    if not ok:
        refuse_torch(f"${ENV} is not a version-{_VERSION} ckptguard guard")
        return
    if "torch" in sys.modules:
        _install(raw)
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(lambda: _install(raw)))
