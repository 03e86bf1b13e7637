"""ckptguard's start-up hook for child Python processes (``$PYTHONPATH`` starts with this dir).

When ``$CKPTGUARD_GUARD`` is set, arm the checkpoint guard (installed once ``torch`` is
imported; fail closed: if it cannot be, ``import torch`` fails). Then run the
``sitecustomize`` module this one shadows, if there is one further along ``sys.path``.
Costs a dictionary lookup when the variable is not set.
"""

from __future__ import annotations

import os
import sys


def _arm() -> None:
    if not os.environ.get("CKPTGUARD_GUARD"):
        return
    try:
        from ckptguard._childhook import arm_from_env  # noqa: PLC0415
    except Exception as exc:  # another interpreter, without ckptguard: no torch either
        _refuse(f"ckptguard is not importable here: {type(exc).__name__}: {exc}")
        return
    arm_from_env()


def _refuse(why: str) -> None:
    import importlib.abc  # noqa: PLC0415

    class _Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            if fullname == "torch" or fullname.startswith("torch."):
                raise ImportError(
                    "ckptguard: torch is blocked in this process: $CKPTGUARD_GUARD asks for the "
                    f"checkpoint guard, but it cannot be installed ({why})",
                    name=fullname,
                )

    sys.meta_path.insert(0, _Refuse())


def _chain() -> None:
    """Run the ``sitecustomize`` this module shadows (the next one on ``sys.path``)."""
    import importlib.machinery  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_arm()
_chain()
