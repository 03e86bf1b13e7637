"""Loading the shipped policy data (ckptguard/data/policy.toml), once per process."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ckptguard._errors import PolicyError


@dataclass(frozen=True)
class ShippedData:
    profiles: MappingProxyType[str, MappingProxyType[str, str]]  # profile -> name -> reason
    dangerous_modules: MappingProxyType[str, str]
    dangerous_globals: MappingProxyType[str, str]
    dangerous_attributes: MappingProxyType[str, str]


def _table(doc: dict[str, Any], *path: str) -> dict[str, str]:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in node.items()
    ):
        raise PolicyError(f"shipped policy.toml: [{'.'.join(path)}] must map names to reasons")
    return node


@functools.lru_cache(maxsize=1)
def shipped() -> ShippedData:
    raw = resources.files("ckptguard").joinpath("data/policy.toml").read_bytes()
    doc = tomllib.loads(raw.decode("utf-8"))
    profiles = {
        name: MappingProxyType(_table(doc, "profiles", name, "globals"))
        for name in doc.get("profiles", {})
    }
    return ShippedData(
        profiles=MappingProxyType(profiles),
        dangerous_modules=MappingProxyType(_table(doc, "dangerous", "modules")),
        dangerous_globals=MappingProxyType(_table(doc, "dangerous", "globals")),
        dangerous_attributes=MappingProxyType(_table(doc, "dangerous", "attributes")),
    )
