"""Route every ``torch.load`` in the process through ``ckptguard.load``, and put it back exactly.

``torch.load`` and ``torch.serialization.load`` are the same function; libraries call it as
``torch.load(...)`` (Lightning's ``pl_load``, fairseq's ``load_checkpoint_to_cpu``,
transformers, ``torch.hub``), so replacing both attributes reaches them without touching
site-packages. Code that bound the function to another name before the patch (``from torch
import load``) keeps the original: ``ckptguard code`` finds such call sites.

One *window* is open while any :func:`patched` block (in any thread) is open or
:func:`install` is in force. While it is open both attributes hold one dispatcher; it closes,
and the functions that were there when it opened are put back, only when the last block exits
and :func:`uninstall` has been called (a count under a lock). Which policy a load uses is
decided per call, from the calling thread (and asyncio task):

1. the innermost :func:`patched` block open in that thread or task;
2. else the :func:`install` policy;
3. else the default policy (a thread that opened no block while another thread's block holds
   the window open still loads through ckptguard: the window never lets a load through unsafe).

A dispatcher reference kept after the window closes (``f = torch.load`` inside a block) keeps
loading through ckptguard, by the same rules.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ckptguard._dcp import _guard as dcp_guard  # a module: importing it first works too
from ckptguard._errors import CheckpointError, RefusedLoadWarning, UsageError
from ckptguard._load._children import children_guarded
from ckptguard._load._safe_load import drop_unsafe_kwargs, load
from ckptguard._load._window import Layer, blocks, current, window
from ckptguard._policy import Policy, PolicyArg, resolve_policy

_MARK = "__ckptguard_original__"


def original_torch_load() -> Callable[..., Any]:
    """PyTorch's own ``torch.serialization.load`` beneath any ckptguard patches.

    While the window is open this is what the window replaced, even if other code has since
    wrapped the dispatcher (calling that wrapper would come back into ckptguard).
    """
    import torch.serialization  # noqa: PLC0415

    fn: Any = window.dispatcher or torch.serialization.load
    while hasattr(fn, _MARK):
        fn = getattr(fn, _MARK)
    return fn  # type: ignore[no-any-return]


def _make_dispatcher(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def torch_load(
        f: Any,
        map_location: Any = None,
        pickle_module: Any = None,
        *,
        weights_only: bool | None = None,
        mmap: bool | None = None,
        **pickle_load_args: Any,
    ) -> Any:
        layer = current()
        if weights_only is not None:
            pickle_load_args["weights_only"] = weights_only
        if pickle_module is not None:
            pickle_load_args["pickle_module"] = pickle_module
        drop_unsafe_kwargs(pickle_load_args, stacklevel=2)
        try:
            return load(
                f, map_location, policy=layer.policy, mmap=mmap,
                restore_types=layer.restore_types, **pickle_load_args,
            )  # fmt: skip
        except CheckpointError as exc:
            # Applications often wrap loading in a bare `except:`; say why before they do.
            warnings.warn(
                f"ckptguard refused a torch.load: {exc.diagnostics()}",
                RefusedLoadWarning,
                stacklevel=2,
            )
            raise

    setattr(torch_load, _MARK, original)
    torch_load.__doc__ = (
        "torch.load routed through ckptguard.load (installed by ckptguard.patched/install).\n\n"
        + (original.__doc__ or "")
    )
    return torch_load


def _open_window() -> None:
    """Put the dispatcher in place if the window is closed (call with the lock held)."""
    if window.is_open:
        return
    import torch  # noqa: PLC0415
    import torch.serialization  # noqa: PLC0415

    before = (torch.load, torch.serialization.load)
    dispatcher = _make_dispatcher(torch.serialization.load)
    # The default policy is resolved at the first load that needs it (a thread outside any
    # block): opening a block costs no policy discovery, and a bad $CKPTGUARD_POLICY fails
    # that load (closed), not blocks that bring their own policy.
    window.default, window.before, window.dispatcher = None, before, dispatcher
    torch.load = dispatcher
    torch.serialization.load = dispatcher
    dcp_guard.open_guard(patched)  # DCP's FileSystemReader


def _close_window_if_unused() -> None:
    """Put back what was there when the window opened, once nothing holds it open (lock held).

    An attribute that other code replaced after the window opened is left as that code set it
    (it wraps the dispatcher, or chose to bypass it; putting the old function back under it
    would undo a patch that is not ours to undo).
    """
    if window.is_open or window.before is None:
        return
    import torch  # noqa: PLC0415
    import torch.serialization  # noqa: PLC0415

    load_before, serialization_before = window.before
    if torch.load is window.dispatcher:
        torch.load = load_before
    if torch.serialization.load is window.dispatcher:
        torch.serialization.load = serialization_before
    window.before = window.dispatcher = window.default = None
    dcp_guard.close_guard()


def _policy(allow: Iterable[str], policy: PolicyArg) -> Policy:
    # Resolved once, when the block opens: a bad policy fails here, not at the first load.
    return resolve_policy(allow=allow, policy=policy)


@contextmanager
def patched(
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
    *,
    restore_types: bool = False,
    children: bool = False,
) -> Iterator[None]:
    """Within the block, every ``torch.load`` in the process goes through ``ckptguard.load``.

    Loads made by the thread (or asyncio task) that opened the block use its ``allow`` and
    ``policy``; blocks nest, the innermost applies. Other threads keep loading through
    ckptguard while any block is open, each with its own innermost block's policy, else the
    :func:`install` policy, else the default policy. Calls that pass ``weights_only=False`` or
    ``pickle_module=`` still load through the policy (with a :class:`~ckptguard.LoadWarning`).
    The original functions come back when the last block in the process exits (and
    :func:`install` is not in force), also when blocks raise.

    ``restore_types=True`` rebuilds, in files written by ``ckptguard convert``, the original
    objects of allowed types (as ``ckptguard.load(..., restore_types=True)``).
    ``children=True`` also guards the Python processes started while the block is open
    (``multiprocessing`` spawn/forkserver children, ``subprocess.run([sys.executable, ...])``):
    they load with this block's policy (see docs/load.md; the environment it sets is shared by
    every thread of the process).
    """
    layer = Layer(_policy(allow, policy), restore_types)
    with window.lock:
        _open_window()
        window.open_blocks += 1
    blocks.set((*blocks.get(), layer))
    try:
        if children:
            with children_guarded(layer.policy, restore_types=restore_types):
                yield
        else:
            yield
    finally:
        # Remove this block's own entry (not "the innermost"): right even when blocks are
        # exited out of order (an ExitStack, __exit__ called by hand).
        blocks.set(tuple(b for b in blocks.get() if b is not layer))
        with window.lock:
            window.open_blocks -= 1
            _close_window_if_unused()


def install(
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
    *,
    restore_types: bool = False,
) -> None:
    """Route ``torch.load`` through ``ckptguard.load`` for the rest of the process.

    Threads outside any :func:`patched` block load with this policy; calling it again
    replaces the policy. :func:`uninstall` ends it; the original functions come back once no
    :func:`patched` block is open either. ``restore_types`` as for :func:`patched`.
    """
    resolved = Layer(_policy(allow, policy), restore_types)
    with window.lock:
        if window.installed is not None:
            import torch  # noqa: PLC0415

            if torch.load is not window.dispatcher:
                raise UsageError(
                    "torch.load was replaced by other code after ckptguard.install()",
                    hint="call ckptguard.uninstall() first, or patch in the other order",
                )
        _open_window()
        window.installed = resolved


def uninstall() -> None:
    """Undo :func:`install` (no-op when it is not installed)."""
    with window.lock:
        window.installed = None
        _close_window_if_unused()


def is_installed() -> bool:
    """Whether ``torch.load`` currently goes through ckptguard."""
    import torch  # noqa: PLC0415

    return hasattr(torch.load, _MARK)
