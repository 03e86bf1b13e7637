"""Whose namespace is it? Wildcards (``pkg.mod.*``) are only for the user's own packages.

A wildcard trusts every name a module defines, today and after every upgrade of it. That is a
decision only the author of the module can make, so ckptguard refuses a wildcard whose
top-level package is:

1. part of the standard library (``sys.stdlib_module_names``, ``sys.builtin_module_names``);
2. a third-party namespace ckptguard knows (``[namespaces.third_party]`` in the shipped
   ``policy.toml``: torch, numpy, transformers, ...), installed or not;
3. provided by a distribution installed in this environment whose files for that package lie
   in its installation directory (site-packages / dist-packages). An *editable* install of
   your own project (``pip install -e .``) keeps its files in your source tree and is not
   third-party by this rule.

Nothing is imported: the check reads installed distributions' metadata (file lists) only, and
only when a policy has a wildcard.
"""

from __future__ import annotations

import functools
import os
import sys

from ckptguard._policy._data import shipped


def foreign_namespace(base: str) -> str | None:
    """Why the wildcard ``base.*`` is not the user's own namespace; None when it may be."""
    top = base.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return f"{top} is part of the Python standard library"
    known = shipped().third_party.get(top)
    if known is not None:
        return f"{top} is a third-party namespace ({known})"
    dist = _installed_distribution(top)
    if dist is not None:
        return f"{top} is a third-party package installed here (distribution {dist!r})"
    return None


@functools.lru_cache(maxsize=256)
def _installed_distribution(top: str) -> str | None:
    """The distribution that installs the top-level package ``top`` into site-packages."""
    try:
        from importlib import metadata  # noqa: PLC0415 - only when a policy has a wildcard
    except ImportError:  # pragma: no cover
        return None
    names = _top_level_map().get(top, [])
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - metadata changed under us
            continue
        for candidate in (top, f"{top}.py"):
            if os.path.exists(str(dist.locate_file(candidate))):
                return name
        for file in dist.files or ():  # extension modules (top.cpython-311-x86_64.so, ...)
            parts = file.parts
            if (
                len(parts) == 1
                and parts[0].partition(".")[0] == top
                and not parts[0].endswith(".pth")
            ):
                return name
    return None


@functools.lru_cache(maxsize=1)
def _top_level_map() -> dict[str, list[str]]:
    from importlib import metadata  # noqa: PLC0415

    return {k: list(v) for k, v in metadata.packages_distributions().items()}
