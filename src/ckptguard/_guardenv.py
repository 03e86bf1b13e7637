"""The variable that carries the guard into child processes, and the version of its JSON.

Shared by the start-up half (:mod:`ckptguard._childhook`) and the parent half
(:mod:`ckptguard._load._children`): ``_childhook`` imports ``_children`` (and the patch), so
``_children`` takes these from here, not from ``_childhook``.
"""

ENV = "CKPTGUARD_GUARD"
VERSION = 1
