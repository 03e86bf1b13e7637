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
    import os
    from collections.abc import Callable, Sequence

    from ckptguard._policy import Policy
    from ckptguard._results import FileRecord, ScanRecord, SkippedRecord

__all__ = ["MAX_WHOLE_READ", "RemoteOptions", "is_url", "scan_remote", "scan_with_local"]


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


def scan_with_local(  # noqa: PLR0917 - scan_any's arguments, passed on
    paths: Sequence[str | os.PathLike[str]],
    policy: Policy,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    remote: object,
    client: object,
) -> ScanRecord:
    """Local paths scanned by :func:`ckptguard._scan.scan_paths`, URLs by range reads (or on
    the cluster), in one report."""
    from ckptguard._results import ScanRecord  # noqa: PLC0415
    from ckptguard._scan import scan_paths  # noqa: PLC0415

    urls = [p for p in paths if isinstance(p, str) and is_url(p)]
    local = [p for p in paths if not (isinstance(p, str) and p in urls)]
    record = (
        scan_paths(local, policy=policy, jobs=jobs, progress=progress)
        if local
        else ScanRecord((), (), policy.sources, policy.ignored)
    )
    opts = remote if isinstance(remote, RemoteOptions) else RemoteOptions(concurrency=jobs or 8)
    files, skipped = scan_remote(urls, policy=policy, opts=opts, client=client, progress=progress)
    return ScanRecord(
        files=record.files + tuple(files),
        skipped=record.skipped + tuple(skipped),
        policy_sources=policy.sources,
        policy_ignored=policy.ignored,
    )
