"""Scan orchestration: files and directories in, report objects out.

Reads each file with :mod:`ckptguard._formats` (which analyses every pickle in it), judges each
global with the :class:`~ckptguard._policy.Policy`, and folds everything into frozen report
objects. Nothing here prints; problems with a file become an ``error`` verdict on that file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence

from ckptguard._assess import error_report, report_for
from ckptguard._errors import CheckpointError, FormatError, PickleError
from ckptguard._formats import MODEL_EXTENSIONS, read_file, sniff_head
from ckptguard._formats._detect import sniff_data
from ckptguard._formats._foreign import foreign_model
from ckptguard._formats._text import classify_text
from ckptguard._policy import Policy
from ckptguard._results import FileRecord, ScanRecord, SkippedRecord
from ckptguard._scan_rules import FORMAT_NOT_READ, SCAN_ERROR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ckptguard._formats._source import SourceBuffer

# Below this many files a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 8
# With jobs=None, files are scanned serially for this long before the rest goes to a pool.
_SERIAL_SECONDS = 0.5


def scan_file(path: str | os.PathLike[str], policy: Policy) -> FileRecord:
    """Scan one file. Never raises for problems with the file: they give verdict ``error``."""
    spath = os.fspath(path)
    if _dcp_target(spath):  # a DCP checkpoint (directory, .metadata or shard): one unit
        from ckptguard._dcp import scan_dcp  # noqa: PLC0415 (start-up time)

        return scan_dcp(spath, policy).record
    try:
        size: int | None = os.stat(spath).st_size
    except OSError:
        size = None
    try:
        extracted = read_file(spath)
    except FileNotFoundError:
        err = CheckpointError(
            "no such file",
            path=spath,
            hint="check the path (ckptguard scan takes files and directories)",
        )
        return error_report(spath, err, size)
    except IsADirectoryError:
        err = CheckpointError("is a directory", path=spath, hint=f"ckptguard scan {spath}")
        return error_report(spath, err, size)
    except OSError as exc:
        err = CheckpointError(
            f"cannot read the file: {exc.strerror or exc}",
            path=spath,
            hint="check the file's permissions and that it is fully downloaded",
        )
        return error_report(spath, err, size)
    except CheckpointError as exc:
        plain = getattr(exc, "rule", SCAN_ERROR) == SCAN_ERROR
        foreign = foreign_model(spath) if plain and not isinstance(exc, PickleError) else None
        if foreign is not None:
            exc = FormatError(
                f"{foreign[1]}: ckptguard does not read this format, so it was not checked "
                f"({exc.problem})",
                rule=FORMAT_NOT_READ,
                hint="check it with a tool for that format; ckptguard reads PyTorch, pickle, "
                "numpy and safetensors files",
                format=foreign[0],
            )
        return error_report(spath, exc, size, policy)
    return report_for(spath, extracted, policy, size)


_VCS_DIRS = frozenset({".git", ".hg", ".svn"})


# Where `convert --in-place DIR` keeps the originals it replaced (DIR/.ckptguard-backup/...).
# A directory walk does not enter it (reported in `skipped`), so the tree's scan is green after
# a migration; naming it (`ckptguard scan DIR/.ckptguard-backup`) scans it like any directory.
BACKUP_DIR = ".ckptguard-backup"
_BACKUP_REASON = (
    "backups of the originals `ckptguard convert --in-place` replaced (not walked: nothing "
    "should load them; to check them, scan this directory by name)"
)


def _walk(root: str, skipped: list[SkippedRecord]) -> Iterable[str]:
    """Every entry under ``root`` that is not a directory, sorted; what the walk cannot enter
    (unreadable directories, links to directories) goes to ``skipped`` with the reason."""

    def unreadable(exc: OSError) -> None:
        where = os.path.normpath(exc.filename) if exc.filename else root
        skipped.append(SkippedRecord(where, f"cannot read this directory: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        entries = list(filenames)
        kept = []
        for d in sorted(dirnames):
            if d in _VCS_DIRS:
                where = os.path.normpath(os.path.join(dirpath, d))
                skipped.append(SkippedRecord(where, "a version-control directory (not walked)"))
                continue
            if d == BACKUP_DIR:  # the originals `convert --in-place` replaced: never loaded
                where = os.path.normpath(os.path.join(dirpath, d))
                skipped.append(SkippedRecord(where, _BACKUP_REASON))
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                entries.append(d)  # reported below, not followed
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in sorted(entries):
            yield os.path.normpath(os.path.join(dirpath, name))


def collect_targets(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[str], list[SkippedRecord]]:
    """Expand ``paths`` into (files to scan, files not scanned with the reason).

    A path named explicitly is always scanned (an unrecognised file is then an error). Inside
    a directory, files named like checkpoints are scanned too; every other file is sniffed by
    content (:func:`~ckptguard._formats.sniff`) and scanned unless the stock loaders could not
    run anything from it. Everything not scanned is listed with its reason; model files of a
    format ckptguard does not read carry that format (the scan's verdict is then ``error``).
    """
    targets: list[str] = []
    skipped: list[SkippedRecord] = []
    for p in paths:
        path = os.fspath(p)
        if not os.path.isdir(path):
            targets.append(path)
            continue
        for f in _walk(path, skipped):
            if _dcp_target(f):  # scanned once, as the DCP checkpoint of its directory
                if os.path.basename(f) == _DCP_METADATA:
                    targets.append(os.path.dirname(f))
                continue
            reason = _not_a_file(f)
            if reason is not None:
                skipped.append(SkippedRecord(f, reason))
            elif os.path.splitext(f)[1].lower() in MODEL_EXTENSIONS:
                targets.append(f)  # never skipped, whatever its content: no need to sniff it
            else:
                _triage(f, targets, skipped)
    return targets, skipped


# ---- DCP (torch.distributed.checkpoint) directories: see ckptguard._dcp -------------------
_DCP_METADATA = ".metadata"


def _dcp_target(path: str) -> bool:
    """``path`` is a DCP checkpoint directory (one holding a ``.metadata``), its ``.metadata``,
    or one of its ``.distcp`` shards."""
    if os.path.isdir(path) and not os.path.islink(path):
        root = path
    elif os.path.basename(path) == _DCP_METADATA or path.endswith(".distcp"):
        root = os.path.dirname(path) or "."
    else:
        return False
    return os.path.lexists(os.path.join(root, _DCP_METADATA))


def _not_a_file(f: str) -> str | None:
    if os.path.islink(f):
        if not os.path.exists(f):
            return "a broken symbolic link"
        if os.path.isdir(f):
            return "a symbolic link to a directory (not followed)"
    if not os.path.isfile(f):
        return "not a regular file (a pipe, socket or device)"
    return None


def _triage(f: str, targets: list[str], skipped: list[SkippedRecord]) -> None:
    try:
        kind, head = sniff_head(f)
    except OSError:
        targets.append(f)  # scan_file reports why it cannot be read
        return
    reason = _why_skipped(f, kind, head)
    if reason is None:
        targets.append(f)
    else:
        skipped.append(SkippedRecord(f, *reason))


def _why_skipped(f: str, kind: str, head: bytes) -> tuple[str, str | None] | None:
    """(reason, model format) for a file found in a walk that is not scanned, else None."""
    if kind != "other":
        return None
    foreign = foreign_model(f, head)
    if foreign is not None:
        fmt, what = foreign
        return f"{what}: ckptguard does not read this format (not checked)", fmt
    what = _NOT_CHECKPOINTS.get(classify_text(head) or "", "no format ckptguard knows")
    return f"not a checkpoint ({what})", None


def skip_reason(url: str, buf: SourceBuffer) -> tuple[str, str | None] | None:
    """:func:`_why_skipped` for an object listed under a remote prefix, read by ranges."""
    head = buf[:4096]
    return _why_skipped(url, sniff_data(head, len(buf), lambda: buf), head)


_NOT_CHECKPOINTS = {"git-lfs-pointer": "a Git LFS pointer", "html": "an HTML page", "text": "text"}


def _scan_one(args: tuple[str, Policy]) -> FileRecord:
    return scan_file(args[0], args[1])


def scan_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    policy: Policy,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanRecord:
    """Scan local files and directories (recursively), in parallel when there are many files
    (URLs: :func:`ckptguard._remote.scan_with_local`)."""
    targets, skipped = collect_targets(paths)
    total = len(targets)
    reports: list[FileRecord] = []
    serial_until = total
    if jobs is None:
        # Most files scan in a millisecond (tensor data is never read) and a process pool costs
        # more than that to start: scan serially, and hand what is left to a pool only once the
        # run has proven slow.
        jobs = min(os.cpu_count() or 1, 8)
        budget = _SERIAL_SECONDS if total >= _PARALLEL_MIN_FILES and jobs > 1 else None
    else:
        budget = None
        if jobs > 1 and total >= 2:
            serial_until = 0
    start = time.perf_counter()
    i = 0
    while i < serial_until:
        if budget is not None and i and time.perf_counter() - start > budget:
            break
        reports.append(scan_file(targets[i], policy))
        i += 1
        if progress:
            progress(i, total)
    rest = targets[i:]
    if rest:
        from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415 (start-up time)

        with ProcessPoolExecutor(max_workers=min(jobs, len(rest))) as pool:
            chunk = max(1, len(rest) // (jobs * 8))
            items = [(t, policy) for t in rest]
            for rep in pool.map(_scan_one, items, chunksize=chunk):
                reports.append(rep)
                i += 1
                if progress:
                    progress(i, total)
    return ScanRecord(
        files=tuple(reports),
        skipped=tuple(skipped),
        policy_sources=policy.sources,
        policy_ignored=policy.ignored,
    )
