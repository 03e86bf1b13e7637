"""The state of the torch.load patch that loads read: the window and the open blocks.

:mod:`._patch` opens and closes the window and pushes the layers; the guards it installs
(:mod:`ckptguard._dcp._guard`) read :func:`current_policy` from here, so they never import
:mod:`._patch` (which imports them).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from typing import Any

from ckptguard._policy import Policy, resolve_policy

__all__ = ["Layer", "Window", "blocks", "current", "current_policy", "window"]


class Layer:
    """One open :func:`~ckptguard.patched` block (or the :func:`~ckptguard.install` settings):
    its policy and whether loads rebuild converted types (identity marks the entry to remove)."""

    __slots__ = ("policy", "restore_types")

    def __init__(self, policy: Policy, restore_types: bool = False) -> None:
        self.policy = policy
        self.restore_types = restore_types


# The calling thread's/task's open blocks, innermost last. A ContextVar is per thread (a new
# thread starts with an empty context) and per asyncio task; unlike a threading.local it also
# follows asyncio.to_thread and contextvars.copy_context().run into the worker.
blocks: contextvars.ContextVar[tuple[Layer, ...]] = contextvars.ContextVar(
    "ckptguard_patched_blocks", default=()
)


class Window:
    """Process-wide state of the patch; every field is read and written under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.open_blocks = 0  # patched() blocks open in all threads together
        self.installed: Layer | None = None  # the install() settings
        self.default: Policy | None = None  # for loads outside any block (resolved lazily)
        self.before: tuple[Any, Any] | None = None  # (torch.load, torch.serialization.load)
        self.dispatcher: Callable[..., Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.open_blocks > 0 or self.installed is not None


window = Window()


def _after_fork_in_child() -> None:
    # A forked child (DataLoader workers, multiprocessing "fork") has one thread: a lock held
    # by another thread of the parent at the fork would never be released there.
    window.lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def current() -> Layer:
    """The layer a ``torch.load`` made now, from this thread, goes through: the innermost open
    block of this thread or task, else the :func:`~ckptguard.install` settings, else the
    default policy."""
    open_blocks = blocks.get()
    if open_blocks:
        return open_blocks[-1]
    with window.lock:
        if window.installed is not None:
            return window.installed
        if window.default is None:
            window.default = resolve_policy()
        return Layer(window.default)


def current_policy() -> Policy:
    """The policy a ``torch.load`` made now, from this thread, goes through."""
    return current().policy
