"""Carry ``ckptguard run``'s guard into the Python processes ``multiprocessing`` starts.

A forked child inherits the patched ``torch.load``. A *spawned* child (start method
``spawn``: ``torch.multiprocessing.spawn``, DDP launchers, CUDA code, macOS/Windows defaults)
and every child of a *forkserver* start a fresh interpreter that never saw the patch, so
their ``torch.load`` ran unguarded. ``guard_children`` puts the guard's settings in the
environment (children inherit it) and prefixes the ``-c`` program multiprocessing runs in
those interpreters with :func:`install_from_env`, so the guard is in force before the child
unpickles its task or imports the application's main module.
"""

from __future__ import annotations

import json
import multiprocessing.spawn
import multiprocessing.util
import os
from collections.abc import Callable, Sequence
from typing import Any

from ckptguard._load._patch import install

ENV = "CKPTGUARD_RUN_GUARD"
_PREFIX = "import ckptguard._load._children as _g; _g.install_from_env(); "
_FORKSERVER = "from multiprocessing.forkserver import main"


def install_from_env() -> None:
    """In a child: install the guard described by ``$CKPTGUARD_RUN_GUARD`` (fail closed)."""

    settings = json.loads(os.environ[ENV])
    install(allow=list(settings["allow"]), policy=settings["policy"])


def _prefixed(args: Sequence[str], starts: str) -> list[str]:
    out = list(args)
    for i in range(len(out) - 1):
        if out[i] == "-c" and out[i + 1].startswith(starts):
            out[i + 1] = _PREFIX + out[i + 1]
    return out


def guard_children(allow: Sequence[str], policy: str | None) -> None:
    """Make every spawned or forkserver child of this process install the same guard."""

    os.environ[ENV] = json.dumps(
        {"allow": list(allow), "policy": None if policy is None else os.path.abspath(policy)}
    )
    command_line: Callable[..., list[str]] = multiprocessing.spawn.get_command_line
    passfds: Callable[..., Any] = multiprocessing.util.spawnv_passfds

    def get_command_line(**kwds: Any) -> list[str]:
        return _prefixed(command_line(**kwds), "from multiprocessing.spawn import")

    def spawnv_passfds(path: str, args: Sequence[str], fds: Sequence[int]) -> Any:
        return passfds(path, _prefixed(args, _FORKSERVER), fds)

    multiprocessing.spawn.get_command_line = get_command_line
    multiprocessing.util.spawnv_passfds = spawnv_passfds  # type: ignore[assignment]
