"""``convert``: rewrite a checkpoint so stock weights-only ``torch.load`` reads it.

Scan first (a dangerous global or finding refuses the file, nothing is written), parse the
object pickle into a tree, interpret it into plain data (``_plain``), write a new data.pkl with
only weights-only globals (``_emit``) and copy the storage records byte for byte into a new
archive (``_zipwrite``) in a temporary file next to DST; verify the temporary file by reading it
back; then rename it over DST. SRC is only read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ckptguard._convert._emit import emit_pickle
from ckptguard._convert._plain import Converter, attach_types
from ckptguard._convert._safetensors import pt_to_safetensors
from ckptguard._convert._source import Source, open_source
from ckptguard._convert._values import weights_only_globals
from ckptguard._convert._zipwrite import ZipWriter
from ckptguard._errors import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    UsageError,
)
from ckptguard._formats._torchscript import only_torchscript
from ckptguard._formats._zip import read_member, read_members
from ckptguard._gc import gc_paused
from ckptguard._policy import Policy, default_policy
from ckptguard._results import FileRecord
from ckptguard._scan import scan_file
from ckptguard._verdict import FileVerdict, Severity, Verdict

ARCHIVE = "archive"
TARGETS = ("pt", "safetensors")


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion did (returned by :func:`ckptguard.convert`)."""

    src: str
    dst: str
    source_format: str
    to: str
    storages_copied: int
    storages_new: int  # numpy arrays turned into tensors
    bytes_written: int
    types: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> original type
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: what changed (e.g. ``3 x numpy.ndarray -> tensor, 1 x argparse...``)."""
        counts = Counter((v["type"], v["as"]) for v in self.types.values())
        parts = [f"{n} x {t} -> {_AS.get(how, how)}" for (t, how), n in sorted(counts.items())]
        head = ", ".join(parts) if parts else "no values needed converting"
        return f"{head}; {self.storages_copied} storage records copied"

    @property
    def plain_types(self) -> dict[str, str]:
        """Each original type this conversion stored as plain data, and what it became
        (``{"mypkg.Mode": "its value", "argparse.Namespace": "dict of its state"}``)."""
        out: dict[str, str] = {}
        for v in self.types.values():
            out.setdefault(v["type"], _AS.get(v["as"], v["as"]))
        return dict(sorted(out.items()))


_AS = {
    "tensor": "tensor",
    "value": "its value",
    "state": "dict of its state",
    "dict": "dict",
    "list": "list",
    "args": "list of its arguments",
    "global": "its name",
    "content": "plain data",
    "set": "set",
    "parts": "dict of its parts",
    "call": "dict of its call",
}


def refuse_unsafe(report: FileRecord) -> None:
    """Raise when the scan says the file must not be touched (dangerous or unreadable)."""
    if report.verdict is FileVerdict.ERROR:
        problem = next(
            (f.message for f in report.findings if f.severity is Severity.ERROR),
            "the file cannot be read",
        )
        raise CorruptCheckpointError(
            f"cannot convert: {problem}",
            path=report.path,
            hint=report.hint or f"ckptguard scan {report.path}",
            format=report.format,
        )
    if report.verdict is FileVerdict.DANGEROUS:
        bad = [g.qualified_name for g in report.globals if g.verdict is Verdict.DANGEROUS]
        bad += [f.rule for f in report.findings if f.severity is Severity.DANGEROUS]
        raise UnsafeCheckpointError(
            f"refusing to convert: the file is dangerous ({', '.join(bad)}); nothing was written",
            path=report.path,
            hint=f"do not load this file; details: ckptguard scan {report.path}",
            format=report.format,
            report=report,
        )


def plan(src: Source, policy: Policy) -> tuple[bytes, Any, Converter]:
    """Interpret ``src`` and emit its new data.pkl."""
    conv = Converter(src.storage_sizes, legacy=src.format == "pytorch-legacy")
    result = conv.run(src.tree.root)
    attach_types(result, os.path.basename(src.path), src.format)
    del policy
    return emit_pickle(result.root), result, conv


def check_target(src_path: str, dst_path: str, to: str) -> None:
    """:class:`UsageError` unless ``to`` is a format convert writes."""
    if to not in TARGETS:
        raise UsageError(
            f"unknown target format {to!r}: choose from {', '.join(TARGETS)}",
            hint=f"ckptguard convert {src_path} {dst_path} --to pt",
        )


def convert_file(
    src_path: str,
    dst_path: str,
    *,
    to: str = "pt",
    force: bool = False,
    policy: Policy,
    backup: str | None = None,
    fsync: bool = False,
) -> ConvertResult:
    """Convert one file (see :func:`ckptguard.convert`). ``backup``: in-place mode, rename SRC
    to this path before DST (== SRC) replaces it. A file only: ``ckptguard._convert.convert_file``
    also takes DCP checkpoints (:mod:`ckptguard._dcp._convert`, which uses this one)."""
    # The trees of a pickle-heavy file are millions of objects that live until the end: with
    # the collector on, every later allocation would make it walk them again.
    with gc_paused():
        return _convert_file(src_path, dst_path, to, force, policy, backup, fsync)


def _convert_file(  # noqa: PLR0917 - the arguments of convert_file
    src_path: str,
    dst_path: str,
    to: str,
    force: bool,
    policy: Policy,
    backup: str | None,
    fsync: bool,
) -> ConvertResult:
    check_target(src_path, dst_path, to)
    if not os.path.isfile(src_path):
        raise UsageError(f"{src_path}: no such file", hint="ckptguard convert SRC DST")
    same = os.path.exists(dst_path) and os.path.samefile(src_path, dst_path)
    if same and backup is None:
        raise UsageError(
            f"{dst_path} is the source file: convert never modifies SRC",
            hint=f"write elsewhere, or convert a directory in place: ckptguard convert "
            f"--in-place {os.path.dirname(src_path) or '.'}",
        )
    if os.path.exists(dst_path) and not same and not force:
        raise UsageError(
            f"{dst_path} already exists",
            hint=f"pass --force to overwrite it: ckptguard convert {src_path} {dst_path} --force",
        )
    report = scan_file(src_path, policy)
    if not only_torchscript(report.globals, report.findings):  # its weights can be extracted
        refuse_unsafe(report)
    try:
        src = open_source(src_path)
    except CheckpointError as exc:
        raise exc.with_path(src_path) from None
    try:
        data_pkl, result, _conv = plan(src, policy)
    except CheckpointError as exc:
        raise exc.with_path(src_path) from None
    dst_dir = os.path.dirname(os.path.abspath(dst_path))
    _write_and_replace(src_path, dst_path, dst_dir, src, data_pkl, result, to, backup, force, fsync)
    return ConvertResult(
        src=src_path,
        dst=dst_path,
        source_format=src.format,
        to=to,
        storages_copied=sum(1 for s in result.storages.values() if s.data is None),
        storages_new=sum(1 for s in result.storages.values() if s.data is not None),
        bytes_written=os.path.getsize(dst_path),
        types=result.types,
        notes=tuple(result.notes),
    )


def _write_and_replace(  # noqa: PLR0917 - the steps of one conversion
    src_path: str,
    dst_path: str,
    dst_dir: str,
    src: Source,
    data_pkl: bytes,
    result: Any,
    to: str,
    backup: str | None,
    force: bool,
    fsync: bool,
) -> None:
    """Write DST through temporary files next to it, verify, then rename into place.

    Whatever fails (an exception while writing, a full disk, verification, Ctrl-C), every
    temporary file is removed, and in in-place mode SRC is put back where it was (it is moved
    to ``backup`` only just before the new file replaces it)."""
    temps: list[str] = []
    moved = False
    try:
        tmp = _new_temp(dst_dir, temps)
        with open(tmp, "r+b") as out, open(src_path, "rb") as fin:
            written = _write_archive(out, fin.fileno(), src, data_pkl, result.storages)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        _verify(tmp, src_path, data_pkl, written)
        final = tmp
        if to == "safetensors":
            final = _new_temp(dst_dir, temps)
            try:
                pt_to_safetensors(tmp, final)
            except CheckpointError as exc:
                raise exc.with_path(src_path) from None
            if fsync:
                with open(final, "rb") as fh:
                    os.fsync(fh.fileno())
        if backup is not None:
            if os.path.exists(backup) and not force:
                raise UsageError(
                    f"{backup} already exists",
                    hint=f"pass --force to replace it: ckptguard convert --in-place --force "
                    f"{os.path.dirname(src_path) or '.'}",
                )
            moved = True  # before the rename: an interrupt right after it still restores
            os.replace(src_path, backup)
        os.replace(final, dst_path)
        temps.remove(final)
    except BaseException as exc:
        if isinstance(exc, CheckpointError):
            exc.with_path(src_path)
        if moved and not os.path.exists(src_path):
            with contextlib.suppress(OSError):
                os.replace(backup or "", src_path)  # SRC back where it was
        if isinstance(exc, OSError):  # a full disk, a read-only directory, ...
            raise CheckpointError(
                f"cannot write the converted file: {exc.strerror or exc}; nothing was "
                "written and the source is unchanged",
                path=dst_path,
                hint=f"free some space or write elsewhere: ckptguard convert {src_path} "
                f"OTHER_DIR/{os.path.basename(dst_path)}",
            ) from exc
        raise
    finally:
        for path in temps:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _new_temp(directory: str, temps: list[str]) -> str:
    """A new empty temporary file in ``directory``, registered in ``temps`` (for removal)."""
    fd, path = _mkstemp(directory)
    temps.append(path)
    os.close(fd)
    return path


# What each storage record of the output must hold, for the read-back check: (size, crc, and
# where its raw bytes are in SRC, or its bytes when the record is new).
_Expect = tuple[int, int, int | bytes]
_SMALL = {".format_version": b"1", ".storage_alignment": b"64", "byteorder": b"little"}
_SAMPLE = 4096  # bytes compared with SRC at the start and at the end of every storage record


def _write_archive(
    out: Any, src_fd: int, src: Source, data_pkl: bytes, storages: dict[str, Any]
) -> dict[str, _Expect]:
    """Write the archive; return what every storage record written must hold."""
    zw = ZipWriter(out)
    zw.add_bytes(f"{ARCHIVE}/data.pkl", data_pkl)
    for rel, content in _SMALL.items():
        zw.add_bytes(f"{ARCHIVE}/{rel}", content)
    written: dict[str, _Expect] = {}
    spannable: list[tuple[str, int, int, int, int, int]] = []
    for key in sorted(storages, key=lambda k: (len(k), k)):
        st = storages[key]
        name = f"{ARCHIVE}/data/{key}"
        if st.data is not None:
            w = zw.add_bytes(name, st.data)
            written[name] = (w.size, w.crc, st.data)
            continue
        rec = src.records[key]
        if rec.crc is not None:  # zip records: copied later, in runs
            spannable.append((name, rec.offset, rec.method, rec.crc, rec.csize, rec.size))
            continue
        w = zw.add_copy(
            name,
            src_fd,
            rec.offset,
            method=rec.method,
            crc=rec.crc,
            csize=rec.csize,
            size=rec.size,
        )
        written[name] = (w.size, w.crc, rec.offset)
    for run in ZipWriter.spans(spannable):
        zw.add_span(src_fd, run)
        for name, off, _m, crc, _cs, size in run:
            written[name] = (size, crc, off)
    zw.add_bytes(f"{ARCHIVE}/version", b"3\n")
    zw.close()
    return written


def _verify(path: str, src_path: str, data_pkl: bytes, written: dict[str, _Expect]) -> None:
    """Read the new file back before it may replace DST; raise if anything is off.

    Checked: the whole zip structure, by the scanner's strict reader (end records, zip64
    fields, every local header against the central directory, members tiling the file with no
    gap, overlap or trailing bytes: a truncated or damaged file fails here); exactly the
    expected members; data.pkl and the small records byte-identical (and CRC-checked); the
    scan of the new file with the default policy ``safe`` (its symbolic unpickler walks the
    whole object pickle, and every persistent id must name a large enough storage record) and
    every global it names in the weights-only table; every storage record's
    size and CRC as expected, and its first and last 4 KiB identical to SRC's bytes (or to the
    new record's bytes). Not re-read: the middle of the copied records (their CRC32 over the
    whole file would cost ~0.17 s per GiB); the kernel copied them between those checked ends.
    """

    def fail(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"internal: the converted file did not verify ({what}); nothing was written",
            path=src_path,
            hint="please report this as a ckptguard bug; the source is unchanged and loads "
            f"with ckptguard.load({src_path!r})",
        )

    report = scan_file(path, default_policy())
    if report.verdict is not FileVerdict.SAFE:
        problems = [g.qualified_name for g in report.globals if g.verdict is not Verdict.SAFE]
        problems += [f.message for f in report.findings if f.severity is not Severity.INFO]
        raise fail(f"{report.verdict}: {'; '.join(problems) or 'no details'}")
    outside = {g.qualified_name for g in report.globals} - weights_only_globals()
    if outside:
        raise fail(f"globals outside the weights-only table: {', '.join(sorted(outside))}")
    with (
        open(path, "rb") as f,
        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        open(src_path, "rb") as fs,
    ):
        members = {m.name: m for m in read_members(mm)}
        small = {f"{ARCHIVE}/{rel}": c for rel, c in {**_SMALL, "version": b"3\n"}.items()}
        small[f"{ARCHIVE}/data.pkl"] = data_pkl
        if set(members) != set(small) | set(written):
            raise fail("its members are not the expected ones")
        for name, content in small.items():
            if read_member(mm, members[name]) != content:
                raise fail(f"{name} did not read back")
        for name, (size, crc, origin) in written.items():
            m = members[name]
            if (m.size, m.crc) != (size, crc):
                raise fail(f"{name}: size or CRC differ")
            n = m.compressed_size
            for at in sorted({0, max(0, n - _SAMPLE)}):
                k = min(_SAMPLE, n - at)
                if isinstance(origin, bytes):
                    want = origin[at : at + k]
                else:
                    want = os.pread(fs.fileno(), k, origin + at)
                if mm[m.data_offset + at : m.data_offset + at + k] != want:
                    raise fail(f"{name}: its bytes differ from the source's")


def _mkstemp(directory: str) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=".ckptguard-", suffix=".tmp", dir=directory)`` (same name
    pattern, mode 0600, O_EXCL) without importing ``tempfile`` (~3 ms of every start)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(directory, f".ckptguard-{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")
