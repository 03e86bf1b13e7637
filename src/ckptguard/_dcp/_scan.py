"""Scan a DCP checkpoint directory as one unit: ``.metadata``, the shards, every bytes item.

1. ``.metadata`` (a regular file, not a link) is analysed as a pickle and judged with the
   user's policy plus the ``dcp`` profile (the metadata dataclasses: vetted for this pickle
   only). Nothing is unpickled.
2. If its globals pass, the storage index is resolved symbolically (:mod:`._layout`) and every
   item is located (:mod:`._shards`: paths stay inside the directory, shards exist, ranges lie
   in bounds, do not overlap and tile each shard, no transform descriptors).
3. Every bytes item (a ``torch.save``'d object that ``dcp.load`` reads with
   ``torch.load(weights_only=False)``) is scanned as the checkpoint it is, with the user's
   policy, and reported under ``dir/SHARD[offset:length] (fqn)``. Tensor chunks are never read.

The unit's verdict is the worst of the metadata's, the layout's and the items'.
"""

from __future__ import annotations

import os
import stat

from ckptguard._assess import error_report, file_verdict, report_for
from ckptguard._errors import CheckpointError, DcpError, PickleError
from ckptguard._formats import read_buffer
from ckptguard._formats._common import error_finding
from ckptguard._grammar import a_or_an
from ckptguard._pickle._tree import build_tree
from ckptguard._policy import Policy
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord
from ckptguard._scan_rules import DCP_BYTES_FORMAT, DCP_METADATA, DCP_MISSING_METADATA, DCP_PATH
from ckptguard._verdict import FileVerdict, Verdict, worst_verdict

from ._layout import Item, Layout, Storage, parse_layout
from ._shards import check_shards

METADATA = ".metadata"
FORMAT = "dcp"
# Formats torch.load reads a BytesIO as (and ckptguard.load loads).
_ITEM_FORMATS = ("pytorch-zip", "pytorch-legacy")
_MAX_METADATA = 1 << 30


def dcp_policy(policy: Policy) -> Policy:
    """``policy`` with the ``dcp`` profile enabled (for ``.metadata`` only)."""
    if "dcp" in policy.profiles:
        return policy
    return Policy(
        (*policy.profiles, "dcp"), policy.allowed, policy.denied, policy.source,
        policy.sources, policy.ignored,
    )  # fmt: skip


def item_label(root: str, storage: Storage, fqn: str) -> str:
    shard = os.path.join(root, storage.relative_path)
    return f"{shard}[{storage.offset}:{storage.length}] ({fqn})"


def read_metadata_bytes(root: str) -> bytes:
    """The bytes of ``root/.metadata``: a regular file (not a link), read once."""
    path = os.path.join(root, METADATA)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DcpError(
            f"{path}: no .metadata file: not a DCP checkpoint, or an incomplete one",
            rule=DCP_MISSING_METADATA,
        ) from None
    except OSError as exc:
        raise DcpError(
            f"{path}: cannot open .metadata ({exc.strerror or exc}; a symbolic link is refused)",
            rule=DCP_PATH,
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DcpError(f"{path}: .metadata is not a regular file", rule=DCP_PATH)
        if st.st_size > _MAX_METADATA:
            raise DcpError(f"{path}: .metadata is over {_MAX_METADATA} bytes", rule=DCP_METADATA)
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


class Scanned:
    """A scanned DCP checkpoint: the unit's record, and what loading needs."""

    __slots__ = ("layout", "metadata", "metadata_report", "record", "root")

    def __init__(
        self, root: str, record: FileRecord, metadata: bytes | None,
        metadata_report: FileRecord | None, layout: Layout | None,
    ) -> None:  # fmt: skip
        self.root = root
        self.record = record
        self.metadata = metadata
        self.metadata_report = metadata_report
        self.layout = layout


def scan_metadata(root: str, data: bytes, policy: Policy) -> tuple[FileRecord, Layout | None]:
    """Judge ``.metadata`` and, when its globals pass, resolve its layout."""
    path = os.path.join(root, METADATA)
    mpolicy = dcp_policy(policy)
    try:
        extracted = read_buffer(data, name=path)
    except CheckpointError as exc:
        return error_report(path, exc.with_path(path), len(data), mpolicy), None
    rec = _paths_as_pure(report_for(path, extracted, mpolicy, len(data)))
    if extracted.format != "pickle" or len(extracted.pickles) != 1:
        bad = error_finding(
            DCP_METADATA,
            f".metadata is {a_or_an(extracted.format)} file of {len(extracted.pickles)} pickle(s), "
            "not the one pickle dcp writes",
        )
        return _with(rec, (bad,)), None
    if rec.verdict is not FileVerdict.SAFE:
        return rec, None

    try:
        tree = build_tree(data)
        if tree.end != len(data):
            raise DcpError(
                f".metadata has {len(data) - tree.end} bytes after its pickle's STOP",
                rule=DCP_METADATA,
            )
        layout = parse_layout(tree.root)
    except (DcpError, PickleError) as exc:
        rule = getattr(exc, "rule", DCP_METADATA)
        return _with(rec, (error_finding(rule, exc.problem, METADATA),)), None
    return rec, layout


# dcp.save stores StorageMeta.checkpoint_id as the concrete Path it was given. Concrete paths
# are never vetted (their methods write and delete files); ckptguard loads these classes as
# their string-only pure counterparts instead, and the layout schema allows them only as
# StorageMeta.checkpoint_id (_layout._storage_meta). Rebuilding either runs no code.
PATH_AS_PURE = {
    ("pathlib", "PosixPath"): ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"): ("pathlib", "PureWindowsPath"),
    ("pathlib._local", "PosixPath"): ("pathlib", "PurePosixPath"),
    ("pathlib._local", "WindowsPath"): ("pathlib", "PureWindowsPath"),
}
_PURE_REASON = (
    "StorageMeta.checkpoint_id as dcp.save wrote it: ckptguard loads it as the string-only "
    "{0}.{1}, and the DCP schema allows it nowhere else [dcp]"
)


def _paths_as_pure(rec: FileRecord) -> FileRecord:
    """Judge the concrete path classes of ``.metadata`` as what ckptguard loads them as."""
    if not any((g.module, g.name) in PATH_AS_PURE for g in rec.globals):
        return rec
    refs = tuple(_as_pure(g) if (g.module, g.name) in PATH_AS_PURE else g for g in rec.globals)
    verdict = file_verdict(refs, rec.findings)
    return FileRecord(
        rec.path, rec.format, verdict, refs, rec.findings, rec.pickles, rec.size,
        rec.hint if verdict is not FileVerdict.SAFE else None,
    )  # fmt: skip


def _as_pure(g: GlobalRecord) -> GlobalRecord:
    reason = _PURE_REASON.format(*PATH_AS_PURE[(g.module, g.name)])
    return GlobalRecord(g.module, g.name, Verdict.SAFE, reason, g.count, g.uses, g.locations)


def _with(rec: FileRecord, extra: tuple[FindingRecord, ...]) -> FileRecord:
    findings = (*rec.findings, *extra)
    return FileRecord(
        rec.path, rec.format, file_verdict(rec.globals, findings), rec.globals, findings,
        rec.pickles, rec.size, rec.hint or f"ckptguard inspect {os.path.dirname(rec.path)}",
    )  # fmt: skip


def scan_bytes_item(root: str, item: Item, data: bytes, policy: Policy) -> FileRecord:
    """Scan one bytes item as the checkpoint it is."""
    assert item.storage is not None
    label = item_label(root, item.storage, item.fqn)
    try:
        extracted = read_buffer(data, name=label)
    except CheckpointError as exc:
        return error_report(label, exc.with_path(label), len(data), policy)
    rec = report_for(label, extracted, policy, len(data))
    if extracted.format not in _ITEM_FORMATS:
        bad = error_finding(
            DCP_BYTES_FORMAT,
            f"bytes item {item.fqn!r} is {a_or_an(extracted.format)} file, not a torch.save'd "
            "object: torch.load would read it otherwise than ckptguard",
        )
        return _with(rec, (bad,))
    return rec


def scan_dcp(path: str, policy: Policy) -> Scanned:
    """Scan the DCP checkpoint at ``path`` (its directory, or its ``.metadata``)."""
    root = dcp_root(path)
    try:
        data = read_metadata_bytes(root)
    except DcpError as exc:
        return Scanned(root, _unit(root, error_report(root, exc, None), [], ()), None, None, None)
    meta, layout = scan_metadata(root, data, policy)
    findings: list[FindingRecord] = []
    items: list[FileRecord] = []
    if layout is not None:
        try:
            reader = check_shards(root, layout)
        except DcpError as exc:
            findings.append(error_finding(exc.rule, exc.problem, root))
            layout = None
        else:
            with reader:
                for item in layout.items:
                    if item.storage is not None:
                        blob = reader.read(item.storage)
                        items.append(scan_bytes_item(root, item, blob, policy))
    record = _unit(root, meta, items, tuple(findings))
    return Scanned(root, record, data, meta, layout)


def _unit(
    root: str, meta: FileRecord, items: list[FileRecord], findings: tuple[FindingRecord, ...]
) -> FileRecord:
    acc: dict[tuple[str, str], GlobalRecord] = {}
    for rec in (meta, *items):
        for g in rec.globals:
            key = (g.module, g.name)
            old = acc.get(key)
            if old is None:
                acc[key] = GlobalRecord(
                    g.module, g.name, g.verdict, g.reason, g.count, g.uses,
                    tuple(f"{rec.path}:{loc}" if rec is not meta else loc for loc in g.locations),
                )  # fmt: skip
            else:
                worse = g if g.file_verdict.rank > old.file_verdict.rank else old
                acc[key] = GlobalRecord(
                    g.module, g.name, worse.verdict, worse.reason, old.count + g.count,
                    tuple(sorted(set(old.uses) | set(g.uses))), (*old.locations, rec.path),
                )  # fmt: skip
    refs = tuple(sorted(acc.values(), key=lambda r: (-r.file_verdict.rank, r.module, r.name)))
    all_findings = (*meta.findings, *findings)
    verdicts = [file_verdict(refs, all_findings), *(i.verdict for i in items)]
    verdict = worst_verdict(verdicts)
    if FileVerdict.DANGEROUS in verdicts:  # a threat is never hidden by a failure
        verdict = FileVerdict.DANGEROUS
    size = _dir_size(root)
    return FileRecord(
        path=root,
        format=FORMAT,
        verdict=verdict,
        globals=refs,
        findings=all_findings,
        pickles=(METADATA, *(i.path for i in items)),
        size=size,
        hint=_hint(root, verdict, refs, meta),
        items=tuple(items),
    )


def _hint(
    root: str, verdict: FileVerdict, refs: tuple[GlobalRecord, ...], meta: FileRecord
) -> str | None:
    if verdict is FileVerdict.SAFE:
        return None
    if verdict is FileVerdict.REVIEW:
        unknown = [r.qualified_name for r in refs if r.verdict.value == "unknown"]
        if unknown:
            flags = " ".join(f"--allow {n}" for n in unknown)
            return (
                f"if you trust these classes: ckptguard scan {root} {flags}  (Python: "
                f"ckptguard.dcp.load(sd, checkpoint_id={root!r}, allow={unknown!r})); to get a "
                f"weights-only file: ckptguard convert {root} OUT.pt"
            )
        return "review the findings above before loading this checkpoint"
    return meta.hint or f"ckptguard inspect {root}  (do not load this checkpoint as it is)"


def _dir_size(root: str) -> int | None:
    total = 0
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except OSError:
        return None
    return total


def dcp_root(path: str) -> str:
    """The directory of the DCP checkpoint ``path`` names (itself, or a file's directory)."""
    if os.path.isdir(path):
        return os.path.normpath(path)
    return os.path.dirname(os.path.normpath(path)) or "."


def is_dcp_dir(path: str) -> bool:
    """A directory holding a regular ``.metadata`` file (not a link)."""
    try:
        st = os.lstat(os.path.join(path, METADATA))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
