"""Honour torch's own trust list: globals registered with ``torch.serialization.add_safe_globals``.

A program that called ``torch.serialization.add_safe_globals([DSPMode])`` (or is inside
``with torch.serialization.safe_globals([...])``) has already told PyTorch "I trust this
class". :func:`with_torch_registry` reads that registry at the time of the call
(``torch.serialization.get_safe_globals()``) and returns the policy extended with those
objects as ``allowed`` (reason: ``registered with torch.serialization.add_safe_globals``),
plus the objects each name must resolve to. Rules:

* only an object's own ``__module__`` + ``__qualname__`` is allowed; the name in an
  ``(obj, "name")`` entry is not trusted (a file could name anything there and the name would
  then be imported), so a file that reaches the object under another name is still refused;
* the object must be what that name resolves to *now*, in modules already imported; the
  unpickler does not import such a name at all: it checks again that the name, however the
  pickle splits it into module and attribute, reaches that very object among the modules
  already loaded, and returns it;
* dangerous names (``os.system``, ``builtins.eval``, ...) stay refused even when registered,
  and names the policy already vets keep their vetted verdict;
* nothing is read when torch was never imported (then nothing can have been registered).
"""

from __future__ import annotations

import sys
from typing import Any

from ckptguard._errors import PolicyError
from ckptguard._policy import Policy
from ckptguard._verdict import Verdict

REASON = "registered with torch.serialization.add_safe_globals"

# (policy, registered names) -> extended policy: building a Policy costs a profile merge.
_cache: dict[tuple[Policy, tuple[str, ...]], Policy] = {}


def _registered() -> list[Any]:
    serialization = sys.modules.get("torch.serialization")
    get = getattr(serialization, "get_safe_globals", None)
    if get is None:
        return []
    try:
        entries = list(get())
    except Exception:  # a broken registry grants nothing
        return []
    return entries


def _own_name(obj: Any) -> tuple[str, str] | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return module, qualname


def resolves_to(module: str, name: str) -> Any:
    """What ``module.name`` is now, among imported modules only (``None`` if unreachable)."""
    obj: Any = sys.modules.get(module)
    if obj is None:
        return None
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:  # any failure: "not this object"
            return None
    return obj


def with_torch_registry(policy: Policy) -> tuple[Policy, dict[str, Any]]:
    """``policy`` plus the objects registered with torch, and the object each qualified name
    (``"module.Name"``) must be."""
    expected: dict[str, Any] = {}
    for entry in _registered():
        obj = entry[0] if isinstance(entry, tuple) and len(entry) == 2 else entry
        own = _own_name(obj)
        if own is None or f"{own[0]}.{own[1]}" in expected:
            continue
        module, name = own
        if resolves_to(module, name) is not obj:
            continue  # a local class, a re-bound name, a module not imported: not by name
        verdict, _ = policy.classify(module, name)
        if verdict in (Verdict.DANGEROUS, Verdict.SAFE):
            continue  # never widened / already vetted
        expected[f"{module}.{name}"] = obj
    if not expected:
        return policy, expected
    names = tuple(sorted(expected))
    key = (policy, names)
    extended = _cache.get(key)
    if extended is None:
        try:
            extended = policy.with_allowed(names, reason=REASON, origin=REASON)
        except PolicyError:  # a name the policy cannot take: trust none of them this call
            return policy, {}
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = extended
    return extended, expected
