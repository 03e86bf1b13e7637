"""Pausing the cyclic garbage collector around allocation-heavy work on a pickle."""

from __future__ import annotations

import gc


class gc_paused:
    """Walking, converting or emitting a large pickle allocates millions of small objects that
    all stay alive until the work is done; the cyclic collector would walk the growing heap
    again and again (more than half the time on a pickle-heavy checkpoint) and find nothing to
    free. Nests; restores the collector's previous state."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()
