"""Scan remote objects: expand prefixes, read each object by ranges, judge it like a local file.

:func:`scan_object` is the unit of work (a thread here, a task on a Dask worker): it never
raises for a problem with the object; a failure to read it completely and exactly is an
``error`` verdict with a ``remote-*`` rule (never ``safe``).
"""

from __future__ import annotations

import fnmatch
import posixpath

from ckptguard._errors import CheckpointError, RemoteError, UsageError
from ckptguard._formats import MODEL_EXTENSIONS
from ckptguard._formats._source import SourceBuffer
from ckptguard._results import FileRecord, FindingRecord, SkippedRecord
from ckptguard._scan_rules import REMOTE_SIZE_MISMATCH, REMOTE_TRUNCATED, SCAN_ERROR
from ckptguard._verdict import FileVerdict, Severity

from ._options import RemoteOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ckptguard._policy import Policy

    from ._fsspec import FsspecSource
    from ._http import HttpSource

# Objects up to this size are read in one request (the zip end-record search window).
_READ_WHOLE = 22 + 0xFFFF

# One target: (URL, listed under a prefix?). Listed objects may be skipped (not checkpoints);
# an object named explicitly is always scanned.
Target = tuple[str, bool]


def _is_http(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def expand(
    urls: Sequence[str], opts: RemoteOptions
) -> tuple[list[Target], list[FileRecord], list[SkippedRecord]]:
    """The objects to scan: each URL, or every object under a prefix filtered by the
    ``--include``/``--exclude`` globs; a prefix that cannot be listed is an error entry."""
    from ._fsspec import is_prefix, list_prefix  # noqa: PLC0415

    targets: list[Target] = []
    errors: list[FileRecord] = []
    skipped: list[SkippedRecord] = []
    for url in urls:
        if _is_http(url) or not is_prefix(url):
            targets.append((url, False))
            continue
        try:
            listed = list_prefix(url, opts)
        except CheckpointError as exc:
            errors.append(_error_record(url, exc))
            continue
        base = url.split("://", 1)[1].split("*", 1)[0].rsplit("/", 1)[0]
        for obj in listed:
            rel = obj.split("://", 1)[1][len(base) :].lstrip("/")
            reason = filtered(rel, opts)
            if reason is None:
                targets.append((obj, True))
            else:
                skipped.append(SkippedRecord(obj, reason))
    return targets, errors, skipped


def filtered(rel: str, opts: RemoteOptions) -> str | None:
    """Why an object at ``rel`` (its path below the listed prefix) is left out, or None.

    A glob matches the relative path (``*`` also crosses '/'), or, when it has no '/', the
    object's name alone."""

    def hit(pattern: str) -> bool:
        name = rel if "/" in pattern else posixpath.basename(rel)
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(rel, pattern)

    if opts.include and not any(hit(p) for p in opts.include):
        return "not matched by --include"
    for p in opts.exclude:
        if hit(p):
            return f"matched by --exclude {p}"
    return None


def open_source(url: str, opts: RemoteOptions) -> HttpSource | FsspecSource:
    if _is_http(url):
        from ._http import HttpSource  # noqa: PLC0415

        return HttpSource(url, opts)
    from ._fsspec import FsspecSource  # noqa: PLC0415

    return FsspecSource(url, opts)


def _error_record(url: str, err: CheckpointError, size: int | None = None) -> FileRecord:
    return FileRecord(
        path=url,
        format=err.format or "remote",
        verdict=FileVerdict.ERROR,
        findings=(
            FindingRecord(getattr(err, "rule", SCAN_ERROR), Severity.ERROR, err.problem, None),
        ),
        size=size,
        hint=err.hint,
        bytes_read=None,
    )


def scan_object(target: Target, policy: Policy, opts: RemoteOptions) -> FileRecord | SkippedRecord:
    """Scan one remote object; a listed object that is no checkpoint is skipped (like files met
    while walking a directory). Never raises for a problem with the object."""
    url, listed = target
    try:
        source = open_source(url, opts)
    except UsageError:
        raise
    except CheckpointError as exc:
        return _error_record(url, exc)
    try:
        buf = SourceBuffer(source)
    except (OSError, OverflowError, ValueError, MemoryError) as exc:
        # a size no sparse copy can hold (an HTTP server may announce any Content-Range total)
        source.close()
        err = RemoteError(
            f"the object claims {source.size} bytes, more than ckptguard can map to read it "
            f"by ranges ({exc}): refused",
            rule=REMOTE_SIZE_MISMATCH,
            path=url,
        )
        return _error_record(url, err, source.size)
    head = getattr(source, "head", None)
    if head:
        buf.add(0, head)
    try:
        return _scan_buffer(url, buf, policy, listed)
    finally:
        buf.close()
        source.close()


def _scan_buffer(
    url: str, buf: SourceBuffer, policy: Policy, listed: bool
) -> FileRecord | SkippedRecord:
    from ckptguard._assess import error_report, report_for  # noqa: PLC0415
    from ckptguard._formats._detect import read_source  # noqa: PLC0415
    from ckptguard._scan import skip_reason  # noqa: PLC0415

    size = buf.size
    try:
        if size <= _READ_WHOLE:
            # no larger than the window a zip reader searches for its end record: read it in
            # one request (fewer round trips; a zip scan would read all of it anyway)
            buf.fetch(0, size)
        if listed and posixpath.splitext(url)[1].lower() not in MODEL_EXTENSIONS:
            reason = skip_reason(url, buf)
            if reason is not None:
                return SkippedRecord(url, reason[0], reason[1])
        _prefetch_zip(buf)
        extracted = read_source(buf)
    except RemoteError as exc:
        return _with_bytes(_error_record(url, exc, size), buf)
    except OSError as exc:
        err = RemoteError(f"read failed: {exc}", rule=REMOTE_TRUNCATED, path=url)
        return _with_bytes(_error_record(url, err, size), buf)
    except CheckpointError as exc:
        return _with_bytes(error_report(url, exc, size, policy), buf)
    return _with_bytes(report_for(url, extracted, policy, size), buf)


def _with_bytes(rec: FileRecord, buf: SourceBuffer) -> FileRecord:
    return FileRecord(
        rec.path, rec.format, rec.verdict, rec.globals, rec.findings, rec.pickles, rec.size,
        rec.hint, buf.bytes_read,
    )  # fmt: skip


def _prefetch_zip(buf: SourceBuffer) -> None:
    """For a zip archive, fetch the end records, the central directory and then every local
    header in two concurrent batches, so that the reader's own (validating) walk over them
    finds them fetched. Only hints: anything odd is left to the reader, which fails closed."""
    from ._prefetch import zip_header_ranges  # noqa: PLC0415

    if buf.size < 30:
        return
    head = buf[:30]  # a zip's first local header (its fixed part)
    if not head.startswith(b"PK\x03\x04"):
        return
    rest = int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    buf.prefetch([(30, 30 + rest), (buf.size - (22 + 0xFFFF), buf.size)])
    zip_header_ranges(buf)


def scan_targets(
    targets: Sequence[Target],
    policy: Policy,
    opts: RemoteOptions,
    progress: Callable[[int, int], None] | None = None,
) -> list[FileRecord | SkippedRecord]:
    """Scan objects with at most ``opts.concurrency`` read at once; results in input order."""
    if not targets:
        return []
    if opts.concurrency == 1 or len(targets) == 1:
        out = []
        for i, t in enumerate(targets):
            out.append(scan_object(t, policy, opts))
            if progress:
                progress(i + 1, len(targets))
        return out
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    results: list[FileRecord | SkippedRecord] = []
    with ThreadPoolExecutor(max_workers=min(opts.concurrency, len(targets))) as pool:
        for i, rec in enumerate(pool.map(lambda t: scan_object(t, policy, opts), targets)):
            results.append(rec)
            if progress:
                progress(i + 1, len(targets))
    return results
