"""Loading the shipped policy data (ckptguard/data/policy.toml), once per process."""

from __future__ import annotations

import functools
import os
from types import MappingProxyType

from ckptguard._errors import PolicyError
from ckptguard._policy._toml import load_shipped_toml
from ckptguard._record import Record, set_field

TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any

DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "data"))
POLICY_FILE = os.path.join(DATA_DIR, "policy.toml")
# Written by scripts/gen_dangerous.py from the standard library's source and the installed
# packages' namespaces: the functions that reach code execution, processes, imports or files,
# and every other name under which a dangerous object is reachable. Never edited by hand.
DERIVED_FILE = os.path.join(DATA_DIR, "dangerous_derived.toml")


class ShippedData(Record):
    __slots__ = (
        "dangerous_attributes",
        "dangerous_globals",
        "dangerous_modules",
        "max_depth",
        "profiles",
        "third_party",
    )  # fmt: skip
    profiles: MappingProxyType[str, MappingProxyType[str, str]]  # profile -> name -> reason
    dangerous_modules: MappingProxyType[str, str]
    dangerous_globals: MappingProxyType[str, str]
    dangerous_attributes: MappingProxyType[str, str]
    third_party: MappingProxyType[str, str]  # top-level namespaces no wildcard may cover
    max_depth: int  # the most dotted parts of any dangerous module or global entry

    def __init__(
        self,
        *,
        profiles: MappingProxyType[str, MappingProxyType[str, str]],
        dangerous_modules: MappingProxyType[str, str],
        dangerous_globals: MappingProxyType[str, str],
        dangerous_attributes: MappingProxyType[str, str],
        third_party: MappingProxyType[str, str],
    ) -> None:
        set_field(self, "profiles", profiles)
        set_field(self, "dangerous_modules", dangerous_modules)
        set_field(self, "dangerous_globals", dangerous_globals)
        set_field(self, "dangerous_attributes", dangerous_attributes)
        set_field(self, "third_party", third_party)
        depth = max((k.count(".") + 1 for k in (*dangerous_modules, *dangerous_globals)), default=1)
        set_field(self, "max_depth", depth)


def _table(doc: dict[str, Any], *path: str, optional: bool = False) -> dict[str, str]:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if node is None and optional:
        return {}
    if not isinstance(node, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in node.items()
    ):
        raise PolicyError(f"shipped policy.toml: [{'.'.join(path)}] must map names to reasons")
    return node


@functools.lru_cache(maxsize=1)
def shipped() -> ShippedData:
    """The hand-written policy.toml alone: all that judging vetted (safe) globals needs."""
    return _build(load_shipped_toml(POLICY_FILE), {})


@functools.lru_cache(maxsize=1)
def shipped_all() -> ShippedData:
    """policy.toml plus the derived danger list, read only when a global is not vetted.

    No derived entry names a vetted global (the generator leaves them out and a test checks),
    so a checkpoint made only of vetted globals never pays for reading the derived file.
    """
    derived = load_shipped_toml(DERIVED_FILE) if os.path.exists(DERIVED_FILE) else {}
    return _build(load_shipped_toml(POLICY_FILE), derived)


def _build(doc: dict[str, Any], derived: dict[str, Any]) -> ShippedData:
    profiles = {
        name: MappingProxyType(_table(doc, "profiles", name, "globals"))
        for name in doc.get("profiles", {})
    }
    # Hand-written entries (and their reasons) win over derived ones of the same name.
    modules = dict(_table(derived, "dangerous", "modules", optional=True))
    modules.update(_table(doc, "dangerous", "modules"))
    dangerous = dict(_table(derived, "dangerous", "globals", optional=True))
    dangerous.update(_table(doc, "dangerous", "globals"))
    return ShippedData(
        profiles=MappingProxyType(profiles),
        dangerous_modules=MappingProxyType(modules),
        dangerous_globals=MappingProxyType(dangerous),
        dangerous_attributes=MappingProxyType(_table(doc, "dangerous", "attributes")),
        third_party=MappingProxyType(_table(doc, "namespaces", "third_party")),
    )
