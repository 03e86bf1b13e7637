"""Spread a remote scan over a Dask distributed cluster: one task per object.

Each task runs :func:`ckptguard._remote._scan.scan_object` on a worker (which needs only
``ckptguard[remote]``) and returns the object's record; the client merges the records in input
order, so the report, its verdicts and its exit code are those of a local run. A task never
raises for a problem with its object (that is an ``error`` verdict). When a worker dies, the
scheduler re-runs the tasks it held on another worker (``distributed.scheduler.allowed-failures``
times, then the file is reported as an ``error`` with rule ``remote-worker-lost``, never
dropped).
"""

from __future__ import annotations

from ckptguard._errors import UsageError
from ckptguard._results import FileRecord, FindingRecord, SkippedRecord
from ckptguard._scan_rules import REMOTE_WORKER_LOST
from ckptguard._verdict import FileVerdict, Severity

from ._options import RemoteOptions
from ._scan import Target, scan_object

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ckptguard._policy import Policy


def scan_on_cluster(
    client: Any,
    targets: Sequence[Target],
    policy: Policy,
    opts: RemoteOptions,
    progress: Callable[[int, int], None] | None = None,
) -> list[FileRecord | SkippedRecord]:
    """Scan every target as a task on ``client``'s cluster; records in input order."""
    if not targets:
        return []
    from distributed import as_completed  # noqa: PLC0415 - only with a client

    futures = client.map(
        scan_object,
        list(targets),
        policy=policy,
        opts=opts,
        pure=False,
        key=[f"ckptguard-scan-{i}-{t[0]}"[:200] for i, t in enumerate(targets)],
    )
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[FileRecord | SkippedRecord | None] = [None] * len(targets)
    for done, future in enumerate(as_completed(futures), 1):  # type: ignore[no-untyped-call]
        i = index[future.key]
        try:
            rec = future.result()
        except Exception as exc:
            if isinstance(exc, UsageError):
                raise
            rec = _lost(targets[i][0], exc)
        results[i] = rec
        if progress:
            progress(done, len(targets))
    return [
        r if r is not None else _lost(t[0], None) for r, t in zip(results, targets, strict=True)
    ]


def _lost(url: str, exc: BaseException | None) -> FileRecord:
    why = f"{type(exc).__name__}: {exc}" if exc is not None else "no result"
    return FileRecord(
        path=url,
        format="remote",
        verdict=FileVerdict.ERROR,
        findings=(
            FindingRecord(
                REMOTE_WORKER_LOST,
                Severity.ERROR,
                f"the cluster could not scan this object ({why}): it was not checked",
                None,
            ),
        ),
        hint="scan it again (ckptguard scan URL) or check the cluster's workers",
    )
