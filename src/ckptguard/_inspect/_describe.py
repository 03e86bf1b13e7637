"""``inspect``: a checkpoint's structure and metadata, without reading tensor data or executing.

Pickled checkpoints (torch zip, legacy torch, plain pickles) are parsed into a tree and
described by :class:`~ckptguard._inspect._describer.Describer` (the converter, showing what
convert would refuse as ``opaque``); safetensors, numpy and TorchScript files from their
headers (:mod:`._headers`). ``inspect_dir`` lists the checkpoints of a directory with
step/epoch/metrics, newest first (see docs/convert.md).
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
import re
from typing import Any

from ckptguard._convert import FORMAT_KEY, open_source
from ckptguard._errors import CheckpointError
from ckptguard._gc import gc_paused
from ckptguard._policy import Policy
from ckptguard._scan_rules import TORCH_TORCHSCRIPT
from ckptguard._verdict import FileVerdict

from ._describer import Describer
from ._headers import (
    Described,
    describe_npy,
    describe_npz,
    describe_safetensors,
    describe_torchscript,
)
from ._inspection import Inspection

_STEP_KEYS = ("global_step", "step", "num_updates", "iteration", "iter", "steps", "update")
_EPOCH_KEYS = ("epoch", "epochs", "current_epoch")
_NESTED = (
    "metrics",
    "trainer_state",
    "train_state",
    "state",
    "extra_state",
    "meta",
    "metadata",
    "loops",
    "progress",
)
_METRIC = re.compile(
    r"(loss|acc|accuracy|score|metric|f1|bleu|ppl|perplexity|auc|wer|cer|error|mae|mse|rmse|"
    r"precision|recall|map|iou|dice)",
    re.IGNORECASE,
)
_LOWER_IS_BETTER = re.compile(r"(loss|error|err|wer|cer|ppl|perplexity|mae|mse|rmse)", re.I)
_PICKLED = ("pytorch-zip", "pytorch-legacy", "pickle")
_HEADERS = ("safetensors", "numpy", "numpy-npz", "torchscript")


def _metadata(root: Any) -> tuple[int | None, int | None, dict[str, float]]:
    step = epoch = None
    metrics: dict[str, float] = {}
    scopes: list[dict[Any, Any]] = []
    if isinstance(root, dict):
        scopes.append(root)
        scopes.extend(root[k] for k in _NESTED if isinstance(root.get(k), dict))
    for scope in scopes:
        for k, v in scope.items():
            if not isinstance(k, str) or isinstance(v, bool):
                continue
            if type(v) is int and step is None and k in _STEP_KEYS:
                step = v
            elif type(v) is int and epoch is None and k in _EPOCH_KEYS:
                epoch = v
            elif type(v) in (int, float) and _METRIC.search(k) and k not in metrics:
                metrics[k] = float(v)
    return step, epoch, metrics


def inspect_file(path: str | os.PathLike[str], *, policy: Policy) -> Inspection:
    """Describe one checkpoint. Problems with the file are returned (``error``), not raised."""
    with gc_paused():  # the tree of a pickle-heavy file: millions of objects, all kept
        return _inspect_file(os.fspath(path), policy)


def _inspect_file(spath: str, policy: Policy) -> Inspection:
    from ckptguard._scan import scan_file  # noqa: PLC0415

    report = scan_file(spath, policy)
    try:
        mtime: float | None = os.stat(spath).st_mtime
    except OSError:
        mtime = None
    ins = Inspection(spath, report.format, report.size, report.verdict, mtime=mtime)
    readable = report.verdict is not FileVerdict.ERROR or (
        report.format == "torchscript"  # an error verdict for what it is, not a broken file
        and all(f.rule == TORCH_TORCHSCRIPT for f in report.findings if f.severity == "error")
    )
    if not readable:
        error = next((f.message for f in report.findings), "cannot read the file")
        return dataclasses.replace(ins, error=error)
    if report.format not in _PICKLED + _HEADERS:
        return dataclasses.replace(ins, error=f"inspect does not describe {report.format} files")
    try:
        if report.format in _PICKLED:
            return _pickled(ins, spath, policy)
        return _from_header(ins, spath, policy)
    except CheckpointError as exc:
        return dataclasses.replace(ins, error=exc.problem, verdict=FileVerdict.ERROR)


def _pickled(ins: Inspection, spath: str, policy: Policy) -> Inspection:

    src = open_source(spath)
    d = Describer(src.storage_sizes, policy=policy)
    result = d.run(src.tree.root)
    types = dict(result.types)
    root = result.root
    if isinstance(root, dict) and isinstance(root.get(FORMAT_KEY), dict):
        recorded = root[FORMAT_KEY].get("types")
        if isinstance(recorded, dict):
            types.update({k: v for k, v in recorded.items() if isinstance(v, dict)})
    tree = d.describe(root, types)
    step, epoch, metrics = _metadata(root)
    return dataclasses.replace(
        ins,
        tree=tree,
        tensors=d.tensors,
        tensor_bytes=d.tensor_bytes,
        step=step,
        epoch=epoch,
        metrics=metrics,
    )


def _from_header(ins: Inspection, spath: str, policy: Policy) -> Inspection:
    with open(spath, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        described: Described
        if ins.format == "safetensors":
            described = describe_safetensors(mm)
        elif ins.format == "numpy":
            described = describe_npy(mm, os.path.basename(spath), Describer({}, policy=policy))
        elif ins.format == "numpy-npz":
            described = describe_npz(mm)
        else:
            described = describe_torchscript(mm, Describer({}, policy=policy))
    return dataclasses.replace(
        ins,
        tree=described.tree,
        tensors=described.tensors,
        tensor_bytes=described.tensor_bytes,
    )


def primary_metric(rows: list[Inspection]) -> str | None:
    """The metric most rows have (validation metrics preferred)."""
    counts: dict[str, int] = {}
    for r in rows:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda k: (counts[k], k.startswith("val"), "loss" in k, k))


def _newest(r: Inspection) -> tuple[float, float, float]:
    return (
        -(r.step if r.step is not None else -math.inf),
        -(r.epoch if r.epoch is not None else -math.inf),
        -(r.mtime or 0.0),
    )


def sort_rows(rows: list[Inspection], *, by: str = "newest") -> tuple[list[Inspection], str | None]:
    """Sort ``rows`` newest first (step, then epoch, then mtime; unknown last), or ``by="best"``
    on the primary metric (lower is better for loss/error-like names). Returns the rows and the
    primary metric."""
    metric = primary_metric(rows)
    rows = sorted(rows, key=_newest)
    if by == "best" and metric is not None:
        sign = 1.0 if _LOWER_IS_BETTER.search(metric) else -1.0
        rows.sort(key=lambda r: (metric not in r.metrics, sign * r.metrics.get(metric, 0.0)))
    return rows, metric


def best_row(rows: list[Inspection], metric: str | None) -> Inspection | None:
    if metric is None:
        return None
    have = [r for r in rows if metric in r.metrics]
    if not have:
        return None
    sign = 1.0 if _LOWER_IS_BETTER.search(metric) else -1.0
    return min(have, key=lambda r: sign * r.metrics[metric])


def inspect_dir(
    path: str | os.PathLike[str], *, policy: Policy, by: str = "newest"
) -> tuple[list[Inspection], str | None]:
    from ckptguard._scan import collect_targets  # noqa: PLC0415

    targets, _skipped = collect_targets([path])
    # the table does not show trees
    rows = [dataclasses.replace(inspect_file(t, policy=policy), tree=None) for t in targets]
    return sort_rows(rows, by=by)
