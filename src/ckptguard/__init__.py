"""ckptguard: load PyTorch checkpoints on PyTorch >= 2.6 without switching the safety off.

The scan API imports neither torch nor numpy::

    import ckptguard
    report = ckptguard.scan("model.ckpt", allow=["mypkg.MyEnum"])
    report.verdict            # FileVerdict.SAFE / REVIEW / DANGEROUS / ERROR
    report.files[0].globals   # every global the file's pickles would import, judged
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from ckptguard._errors import (
    CheckpointError,
    CorruptCheckpointError,
    Error,
    LoadWarning,
    PolicyError,
    RefusedLoadWarning,
    UnsafeCheckpointError,
    UsageError,
)
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict
from ckptguard._version import __version__  # written once (pyproject.toml reads it)

# typing is only for type checkers (start-up time; mypy honours a module-level TYPE_CHECKING).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ckptguard._convert import ConvertResult
    from ckptguard._inspect import Inspection
    from ckptguard._load import install, load, patched, uninstall
    from ckptguard._policy import Policy, PolicyArg
    from ckptguard._results import FileReport, Finding, GlobalRef, ScanReport, Skipped


__all__ = [
    "CheckpointError",
    "ConvertResult",
    "CorruptCheckpointError",
    "Error",
    "FileReport",
    "FileVerdict",
    "Finding",
    "GlobalRef",
    "Inspection",
    "LoadWarning",
    "Policy",
    "PolicyArg",
    "PolicyError",
    "RefusedLoadWarning",
    "ScanReport",
    "Severity",
    "Skipped",
    "UnsafeCheckpointError",
    "UsageError",
    "Use",
    "Verdict",
    "__version__",
    "convert",
    "inspect",
    "install",
    "load",
    "patched",
    "scan",
    "uninstall",
]

PathArg = str | os.PathLike[str]

# Imported on first use, so that `import ckptguard` and the scanner stay torch-free (loading
# needs torch) and cheap (the CLI is measured as a whole process).
_LAZY = {
    "ConvertResult": "ckptguard._convert",
    "FileReport": "ckptguard._results",
    "Finding": "ckptguard._results",
    "GlobalRef": "ckptguard._results",
    "Inspection": "ckptguard._inspect",
    "Policy": "ckptguard._policy",
    "PolicyArg": "ckptguard._policy",
    "ScanReport": "ckptguard._results",
    "Skipped": "ckptguard._results",
    "install": "ckptguard._load",
    "load": "ckptguard._load",
    "patched": "ckptguard._load",
    "uninstall": "ckptguard._load",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptguard' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API (``__all__``, lazy names included), not the module's own imports."""
    return sorted(__all__)


# (not `_policy`: importing the subpackage ckptguard._policy binds that name in this module)
def _policy_for(allow: Iterable[str], policy: PolicyArg, targets: list[object]) -> Policy:
    from ckptguard._policy import Policy, resolve_policy  # noqa: PLC0415

    if policy is not None and not isinstance(policy, (str, os.PathLike, Policy)):
        raise UsageError(f"policy must be a file path or a Policy, not {type(policy).__name__}")
    return resolve_policy(allow=allow, policy=policy, targets=targets)


def scan(
    paths: PathArg | Sequence[PathArg],
    *,
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
    jobs: int | None = None,
    client: object = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    storage_options: Mapping[str, object] | None = None,
) -> ScanReport:
    """Scan files or directories without executing or importing anything from them.

    ``paths`` may also be URLs (``s3://bucket/models/``, ``https://host/model.pt``, any fsspec
    protocol; ``pip install 'ckptguard[remote]'``): objects are read by byte ranges (the zip
    directory and the pickles, never tensor data), prefixes listed recursively and filtered by
    the ``include``/``exclude`` globs (``storage_options`` go to the fsspec filesystem, e.g.
    ``{"client_kwargs": {"endpoint_url": ...}}`` for s3); each file report's ``bytes_read``
    says how much was fetched. ``client``, a ``distributed.Client``, spreads the URLs over its
    Dask cluster (one task per object; the report is the same as a local run's).

    ``allow`` adds globals (``"module.Name"``, or ``"mypkg.module.*"`` for the public names that
    one module of your own defines) on top of the policy;
    ``policy`` is a policy file path or a :class:`Policy`; when it is None the
    policy comes from ``$CKPTGUARD_POLICY`` or the current project's ``pyproject.toml`` (never
    one around the scanned paths: docs/policy.md), else the shipped defaults. Returns a
    :class:`ScanReport` (``policy_sources`` says which policy judged the files);
    problems with a file are reported as verdict ``error``, never raised. A malformed policy
    raises :class:`PolicyError`.
    """
    from ckptguard._scan import scan_paths  # noqa: PLC0415

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    local = [p for p in paths if not (isinstance(p, str) and "://" in p)]
    resolved = _policy_for(allow, policy, list(local))
    remote = None
    if len(local) < len(paths):
        from ckptguard._remote import RemoteOptions  # noqa: PLC0415

        remote = RemoteOptions(
            concurrency=jobs or 8,
            include=tuple(include),
            exclude=tuple(exclude),
            storage_options=tuple((storage_options or {}).items()),
        )
    if remote is None:
        return scan_paths(list(paths), policy=resolved, jobs=jobs)
    from ckptguard._remote import scan_with_local  # noqa: PLC0415

    return scan_with_local(list(paths), resolved, jobs, None, remote, client)


def convert(
    src: PathArg,
    dst: PathArg,
    *,
    to: str = "pt",
    force: bool = False,
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
) -> ConvertResult:
    """Rewrite ``src`` as ``dst`` so that stock ``torch.load`` (weights-only) loads it.

    Scans first and raises :class:`UnsafeCheckpointError` (nothing written) for a dangerous
    file; never executes anything from ``src``; atomic; refuses an existing ``dst`` unless
    ``force``. ``to`` is ``"pt"`` or ``"safetensors"``. Returns a :class:`ConvertResult`.
    """
    from ckptguard._convert import convert_file  # noqa: PLC0415

    resolved = _policy_for(allow, policy, [src])
    return convert_file(os.fspath(src), os.fspath(dst), to=to, force=force, policy=resolved)


def inspect(
    path: PathArg, *, allow: Iterable[str] = (), policy: PolicyArg = None
) -> Inspection | list[Inspection]:
    """Describe a checkpoint (tree of keys, tensor shapes/dtypes/bytes, step/epoch/metrics)
    without reading tensor data or executing anything. Returns an :class:`Inspection`; for a
    directory, a list of them sorted newest first."""
    from ckptguard._inspect import inspect_dir, inspect_file  # noqa: PLC0415

    resolved = _policy_for(allow, policy, [path])
    if os.path.isdir(path):
        return inspect_dir(path, policy=resolved)[0]
    return inspect_file(path, policy=resolved)
