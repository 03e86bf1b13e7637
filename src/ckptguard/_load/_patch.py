"""Route every ``torch.load`` in the process through ``ckptguard.load``, and put it back exactly.

``torch.load`` and ``torch.serialization.load`` are the same function; libraries call it as
``torch.load(...)`` (Lightning's ``pl_load``, fairseq's ``load_checkpoint_to_cpu``,
transformers, ``torch.hub``), so replacing both attributes reaches them without touching
site-packages. Code that bound the function to another name before the patch (``from torch
import load``) keeps the original: ``ckptguard code`` finds such call sites.

Patches nest: each :func:`patched` block restores what was there when it started, and
:func:`install` / :func:`uninstall` manage one process-wide layer underneath.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ckptguard._errors import CheckpointError, UsageError
from ckptguard._policy import Policy, resolve_policy

_MARK = "__ckptguard_original__"
_lock = threading.RLock()
_installed: list[tuple[Any, Any]] = []  # (torch.load, torch.serialization.load) before install


class RefusedLoadWarning(UserWarning):
    """A load inside the patch was refused (shown even if the caller swallows the error)."""


def original_torch_load() -> Callable[..., Any]:
    """PyTorch's own ``torch.serialization.load`` beneath any ckptguard patches."""
    import torch.serialization  # noqa: PLC0415

    fn: Any = torch.serialization.load
    while hasattr(fn, _MARK):
        fn = getattr(fn, _MARK)
    return fn  # type: ignore[no-any-return]


def _make_wrapper(original: Callable[..., Any], policy: Policy) -> Callable[..., Any]:
    from ckptguard._load._load import drop_unsafe_kwargs, load  # noqa: PLC0415

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
        if weights_only is not None:
            pickle_load_args["weights_only"] = weights_only
        if pickle_module is not None:
            pickle_load_args["pickle_module"] = pickle_module
        drop_unsafe_kwargs(pickle_load_args, stacklevel=2)
        try:
            return load(f, map_location, policy=policy, mmap=mmap, **pickle_load_args)
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


def _swap(policy: Policy) -> tuple[Any, Any]:
    import torch  # noqa: PLC0415
    import torch.serialization  # noqa: PLC0415

    before = (torch.load, torch.serialization.load)
    wrapper = _make_wrapper(torch.serialization.load, policy)
    torch.load = wrapper
    torch.serialization.load = wrapper
    return before


def _restore(before: tuple[Any, Any]) -> None:
    import torch  # noqa: PLC0415
    import torch.serialization  # noqa: PLC0415

    torch.load, torch.serialization.load = before


def _policy(allow: Iterable[str], policy: str | os.PathLike[str] | Policy | None) -> Policy:
    # Resolved once, when the patch goes in: a bad policy fails here, not at the first load.
    return resolve_policy(allow=allow, policy=policy)


@contextmanager
def patched(
    allow: Iterable[str] = (), policy: str | os.PathLike[str] | Policy | None = None
) -> Iterator[None]:
    """Within the block, every ``torch.load`` in the process goes through ``ckptguard.load``.

    Calls that pass ``weights_only=False`` or ``pickle_module=`` still load through the policy
    (with a :class:`~ckptguard.LoadWarning`). On exit the previous functions are restored
    exactly, even when the block raises. The patch is process-wide: other threads loading
    while it is in place go through ckptguard too.
    """
    resolved = _policy(allow, policy)
    with _lock:
        before = _swap(resolved)
    try:
        yield
    finally:
        with _lock:
            _restore(before)


def install(
    allow: Iterable[str] = (), policy: str | os.PathLike[str] | Policy | None = None
) -> None:
    """Route ``torch.load`` through ``ckptguard.load`` for the rest of the process.

    Calling it again replaces the policy; :func:`uninstall` restores the functions that were
    there before the first call.
    """
    resolved = _policy(allow, policy)
    with _lock:
        if _installed:
            import torch  # noqa: PLC0415

            if getattr(torch.load, _MARK, None) is None:
                raise UsageError(
                    "torch.load was replaced by other code after ckptguard.install()",
                    hint="call ckptguard.uninstall() first, or patch in the other order",
                )
            _restore(_installed[-1])
            _installed.pop()
        _installed.append(_swap(resolved))


def uninstall() -> None:
    """Undo :func:`install` (no-op when it is not installed)."""
    with _lock:
        if _installed:
            _restore(_installed.pop())


def is_installed() -> bool:
    """Whether ``torch.load`` currently goes through ckptguard."""
    import torch  # noqa: PLC0415

    return hasattr(torch.load, _MARK)
