"""Carry the guard (``ckptguard run``, ``patched(children=True)``) into child Python processes.

A forked child inherits the patched ``torch.load``. Every other child starts a fresh
interpreter that never saw the patch: a ``spawn``/``forkserver`` child of ``multiprocessing``
(``torch.multiprocessing.spawn``, DDP launchers, CUDA code, the macOS/Windows default) and a
``subprocess.run([sys.executable, "extract.py"])`` (RVC extracts HuBERT features this way).
They are reached the way coverage.py measures subprocesses: an environment variable plus a
start-up hook.

* ``$CKPTGUARD_GUARD`` holds the guard as JSON: the parent's *resolved* policy (profiles,
  allow and deny entries with their reasons), so a child in another directory applies exactly
  the same policy, and ``restore_types``.
* ``$PYTHONPATH`` starts with :data:`HOOK_DIR`, a directory holding only a ``sitecustomize``
  module. Python imports it at start-up in every interpreter that does not run with ``-S``,
  ``-E`` or ``-I``; it arms the guard (:func:`ckptguard._childhook.arm_from_env`) and then
  runs the
  ``sitecustomize`` it shadows, if any. Arming (:mod:`ckptguard._childhook`) costs a JSON
  parse and imports nothing heavy until the child imports
  ``torch``: the guard is installed the moment ``torch`` has finished importing, before any
  code of the child can call ``torch.load``.
* ``multiprocessing`` children also get :func:`ckptguard._childhook.install_from_env`
  prefixed to the ``-c`` program they run (this works even when the parent ran with
  ``-E``/``-I``, whose flags multiprocessing passes on).

Fail closed: if ``$CKPTGUARD_GUARD`` is set but cannot be read, or ckptguard cannot be
imported in the child's interpreter, ``import torch`` fails in that child with the reason.
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ckptguard._errors import CheckpointError, UsageError
from ckptguard._guardenv import ENV, VERSION
from ckptguard._policy import Policy
from ckptguard._policy._judge import Entry

__all__ = ["ENV", "HOOK_DIR", "child_environment", "children_guarded", "guard_children",
           "parse_settings", "settings_json"]  # fmt: skip
HOOK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_hook")
_PREFIX = "import ckptguard._childhook as _g; _g.install_from_env(); "
_FORKSERVER = "from multiprocessing.forkserver import main"


# ------------------------------------------------------------------------------ settings
def settings_json(policy: Policy, *, restore_types: bool = False) -> str:
    """The guard as the JSON ``$CKPTGUARD_GUARD`` holds."""
    return json.dumps(
        {
            "version": VERSION,
            "profiles": list(policy.profiles),
            "allowed": [[e.pattern, e.reason] for e in policy.allowed],
            "denied": [[e.pattern, e.reason] for e in policy.denied],
            "source": policy.source,
            "sources": list(policy.sources),
            "restore_types": bool(restore_types),
        }
    )


def parse_settings(raw: str) -> tuple[Policy, bool]:
    """(policy, restore_types) from ``$CKPTGUARD_GUARD``; :class:`UsageError` if unreadable."""

    try:
        doc = json.loads(raw)
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        policy = Policy(
            profiles=tuple(str(p) for p in doc["profiles"]),
            allowed=tuple(Entry(str(p), str(r)) for p, r in doc["allowed"]),
            denied=tuple(Entry(str(p), str(r)) for p, r in doc["denied"]),
            source=str(doc["source"]),
            sources=tuple(str(s) for s in doc["sources"]),
        )
        restore = doc["restore_types"]
        if not isinstance(restore, bool):
            raise ValueError("restore_types is not a boolean")
    except (ValueError, TypeError, KeyError, AttributeError, CheckpointError, UsageError) as exc:
        raise UsageError(
            f"${ENV} does not describe a ckptguard guard ({type(exc).__name__}: {exc})",
            hint=f"unset {ENV}, or start the process under `ckptguard run`",
        ) from None
    return policy, restore


# ------------------------------------------------------------------------------ in a child
# (ckptguard._childhook: the start-up hook and the multiprocessing prefix; it imports this
# module, never the other way round, and nothing heavy until the child imports torch)


# ------------------------------------------------------------------------------ in the parent
def _prefixed(args: Sequence[str], starts: str) -> list[str]:
    out = list(args)
    if not os.environ.get(ENV):
        return out
    for i in range(len(out) - 1):
        if out[i] == "-c" and out[i + 1].startswith(starts) and _PREFIX not in out[i + 1]:
            out[i + 1] = _PREFIX + out[i + 1]
    return out


_multiprocessing_hooked = False


def _hook_multiprocessing() -> None:
    """Prefix the guard to what spawn/forkserver children run, whenever ``$ENV`` is set."""
    global _multiprocessing_hooked  # noqa: PLW0603 - once per process
    if _multiprocessing_hooked:
        return

    command_line: Callable[..., list[str]] = multiprocessing.spawn.get_command_line
    passfds: Callable[..., Any] = multiprocessing.util.spawnv_passfds

    def get_command_line(**kwds: Any) -> list[str]:
        return _prefixed(command_line(**kwds), "from multiprocessing.spawn import")

    def spawnv_passfds(path: str, args: Sequence[str], fds: Sequence[int]) -> Any:
        return passfds(path, _prefixed(args, _FORKSERVER), fds)

    multiprocessing.spawn.get_command_line = get_command_line
    multiprocessing.util.spawnv_passfds = spawnv_passfds  # type: ignore[assignment]
    _multiprocessing_hooked = True


def child_environment(
    policy: Policy, *, restore_types: bool = False, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The two variables that make Python processes started with them load through the guard.

    ``environ`` (default ``os.environ``) supplies the ``PYTHONPATH`` to extend.
    """
    env = os.environ if environ is None else environ
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != HOOK_DIR]
    return {
        ENV: settings_json(policy, restore_types=restore_types),
        "PYTHONPATH": os.pathsep.join([HOOK_DIR, *path]),
    }


def guard_children(policy: Policy, *, restore_types: bool = False) -> None:
    """For the rest of the process: every child Python process installs the same guard."""
    os.environ.update(child_environment(policy, restore_types=restore_types))
    _hook_multiprocessing()


@contextmanager
def children_guarded(policy: Policy, *, restore_types: bool = False) -> Iterator[None]:
    """While the block is open, child Python processes install the same guard (process-wide:
    the environment is shared by all threads); the previous values come back after it."""
    before = {k: os.environ.get(k) for k in (ENV, "PYTHONPATH")}
    guard_children(policy, restore_types=restore_types)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
