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
    PolicyError,
    UnsafeCheckpointError,
    UsageError,
)
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict

# typing is only for type checkers (start-up time; mypy honours a module-level TYPE_CHECKING).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ckptguard._load import (
        LoadWarning,
        RefusedLoadWarning,
        install,
        load,
        patched,
        uninstall,
    )
    from ckptguard._model import FileReport, Finding, GlobalRef, ScanReport

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "Error",
    "FileReport",
    "FileVerdict",
    "Finding",
    "GlobalRef",
    "LoadWarning",
    "PolicyError",
    "RefusedLoadWarning",
    "ScanReport",
    "Severity",
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

# Loading needs torch; it is imported on first use so that `import ckptguard` and the scanner
# stay torch-free. The report dataclasses are imported on first use too: the CLI never needs
# them, and importing dataclasses is a large part of a short process's start-up.
_LAZY = {
    "FileReport": "ckptguard._model",
    "Finding": "ckptguard._model",
    "GlobalRef": "ckptguard._model",
    "ScanReport": "ckptguard._model",
    "load": "ckptguard._load",
    "patched": "ckptguard._load",
    "install": "ckptguard._load",
    "uninstall": "ckptguard._load",
    "LoadWarning": "ckptguard._load",
    "RefusedLoadWarning": "ckptguard._load",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptguard' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def scan(
    paths: PathArg | Sequence[PathArg],
    *,
    allow: Iterable[str] = (),
    policy: object = None,
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
    ``policy`` is a policy file path or a :class:`ckptguard._policy.Policy`; when it is None the
    policy comes from ``$CKPTGUARD_POLICY`` or the current project's ``pyproject.toml`` (never
    one around the scanned paths: docs/policy.md), else the shipped defaults. Returns a
    :class:`ScanReport` (``policy_sources`` says which policy judged the files);
    problems with a file are reported as verdict ``error``, never raised. A malformed policy
    raises :class:`PolicyError`.
    """
    from ckptguard._model import scan_report  # noqa: PLC0415
    from ckptguard._policy import Policy, resolve_policy  # noqa: PLC0415
    from ckptguard._scan import scan_paths  # noqa: PLC0415

    if policy is not None and not isinstance(policy, (str, os.PathLike, Policy)):
        raise UsageError(f"policy must be a file path or a Policy, not {type(policy).__name__}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    local = [p for p in paths if not (isinstance(p, str) and "://" in p)]
    resolved = resolve_policy(allow=allow, policy=policy, targets=local)
    remote = None
    if len(local) < len(paths):
        from ckptguard._remote import RemoteOptions  # noqa: PLC0415

        remote = RemoteOptions(
            concurrency=jobs or 8,
            include=tuple(include),
            exclude=tuple(exclude),
            storage_options=tuple((storage_options or {}).items()),
        )
    record = scan_paths(list(paths), policy=resolved, jobs=jobs, remote=remote, client=client)
    return scan_report(record)


def convert(
    src: PathArg,
    dst: PathArg,
    *,
    to: str = "pt",
    force: bool = False,
    allow: Iterable[str] = (),
    policy: object = None,
) -> object:
    """Rewrite ``src`` as ``dst`` so that stock ``torch.load`` (weights-only) loads it.

    Scans first and raises :class:`UnsafeCheckpointError` (nothing written) for a dangerous
    file; never executes anything from ``src``; atomic; refuses an existing ``dst`` unless
    ``force``. ``to`` is ``"pt"`` or ``"safetensors"``. Returns a ``ConvertResult``.
    """
    from ckptguard._convert import convert_file  # noqa: PLC0415
    from ckptguard._policy import Policy, resolve_policy  # noqa: PLC0415

    if policy is not None and not isinstance(policy, (str, os.PathLike, Policy)):
        raise UsageError(f"policy must be a file path or a Policy, not {type(policy).__name__}")
    resolved = resolve_policy(allow=allow, policy=policy, targets=[src])
    return convert_file(os.fspath(src), os.fspath(dst), to=to, force=force, policy=resolved)


def inspect(path: PathArg, *, allow: Iterable[str] = (), policy: object = None) -> object:
    """Describe a checkpoint (tree of keys, tensor shapes/dtypes/bytes, step/epoch/metrics)
    without reading tensor data or executing anything. Returns an ``Inspection``; for a
    directory, a list of them sorted newest first."""
    from ckptguard._inspect._describe import inspect_dir, inspect_file  # noqa: PLC0415
    from ckptguard._policy import Policy, resolve_policy  # noqa: PLC0415

    if policy is not None and not isinstance(policy, (str, os.PathLike, Policy)):
        raise UsageError(f"policy must be a file path or a Policy, not {type(policy).__name__}")
    resolved = resolve_policy(allow=allow, policy=policy, targets=[path])
    if os.path.isdir(path):
        return inspect_dir(path, policy=resolved)[0]
    return inspect_file(path, policy=resolved)
