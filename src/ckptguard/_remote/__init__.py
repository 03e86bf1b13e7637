"""Scan checkpoints where they live: remote objects read by byte ranges, optionally spread
over a Dask cluster.

``scan_remote`` expands prefixes (recursively, filtered by ``include``/``exclude`` globs) and
scans every object with at most ``RemoteOptions.concurrency`` read at once, or, given a
``distributed.Client``, as one task per object on the cluster (a worker that dies has its
tasks re-run elsewhere by the scheduler; results are merged in input order). fsspec is
imported only when a non-http URL is scanned; distributed only by the caller who passes a
client.
"""

from __future__ import annotations

from ._options import MAX_WHOLE_READ, RemoteOptions, is_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ckptguard._policy import Policy
    from ckptguard._results import FileRecord, SkippedRecord

__all__ = ["MAX_WHOLE_READ", "RemoteOptions", "is_url", "scan_remote"]


def scan_remote(
    urls: Sequence[str],
    *,
    policy: Policy,
    opts: RemoteOptions,
    client: object = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[FileRecord], list[SkippedRecord]]:
    """Scan remote objects and prefixes: (file records, skipped objects), in input order."""
    from ckptguard._results import SkippedRecord  # noqa: PLC0415

    from ._scan import expand, scan_targets  # noqa: PLC0415

    targets, files, skipped = expand(urls, opts)
    if client is not None:
        from ._dask import scan_on_cluster  # noqa: PLC0415

        results = scan_on_cluster(client, targets, policy, opts, progress)
    else:
        results = scan_targets(targets, policy, opts, progress)
    for rec in results:
        if isinstance(rec, SkippedRecord):
            skipped.append(rec)
        else:
            files.append(rec)
    return files, skipped
