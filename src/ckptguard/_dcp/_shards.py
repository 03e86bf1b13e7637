"""Locate every item of a DCP layout in its shard files, and read byte ranges from them.

Fail closed (:class:`DcpError` with a ``dcp-*`` rule) when a ``relative_path`` is not a plain
file name inside the checkpoint directory (``../x``, absolute paths, separators, links),
a shard is missing or not a regular file, a range runs past its shard's end, two ranges
overlap, the ranges of a shard leave bytes that no item owns, a tensor chunk is smaller than
its elements, or an item carries transform descriptors (compression, encryption, or any
other extension: ckptguard supports none, so none can change what is read).
"""

from __future__ import annotations

import os
import stat
from types import TracebackType

from ckptguard._errors import DcpError
from ckptguard._scan_rules import (
    DCP_CHUNK_SIZE,
    DCP_MISSING_SHARD,
    DCP_OUT_OF_BOUNDS,
    DCP_OVERLAP,
    DCP_PATH,
    DCP_SHARD_GAP,
    DCP_TRANSFORM,
)

from ._layout import DTYPE_SIZES, Layout, Storage

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _check_name(root: str, rel: str) -> None:
    bad = (
        not rel
        or rel in (".", "..")
        or "/" in rel
        or "\\" in rel
        or "\x00" in rel
        or os.path.isabs(rel)
        or rel == ".metadata"
    )
    if bad:
        raise DcpError(
            f"{root}: storage path {rel!r} is not a shard file name inside the checkpoint "
            "directory (paths, '..', separators and absolute paths are refused)",
            rule=DCP_PATH,
        )


class ShardReader:
    """Open descriptors of a layout's shard files (no links), for reading byte ranges."""

    def __init__(self, root: str, fds: dict[str, int]) -> None:
        self.root = root
        self.fds = fds

    def read(self, st: Storage) -> bytes:
        fd = self.fds[st.relative_path]
        parts, pos, end = [], st.offset, st.offset + st.length
        while pos < end:
            b = os.pread(fd, end - pos, pos)
            if not b:
                raise DcpError(
                    f"{os.path.join(self.root, st.relative_path)}: truncated while reading "
                    f"[{st.offset}:{st.length}] (the file changed)",
                    rule=DCP_OUT_OF_BOUNDS,
                )
            parts.append(b)
            pos += len(b)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_into(self, st: Storage, view: memoryview) -> None:
        fd = self.fds[st.relative_path]
        done = 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], st.offset + done)
            if n <= 0:
                raise DcpError(
                    f"{os.path.join(self.root, st.relative_path)}: truncated (the file changed)",
                    rule=DCP_OUT_OF_BOUNDS,
                )
            done += n

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_shards(root: str, layout: Layout) -> ShardReader:
    """Check the layout against the shard files; return a reader holding them open."""
    per_file: dict[str, list[tuple[int, int, str]]] = {}
    for st, item, chunk in layout.storages():
        _check_name(root, st.relative_path)
        if st.transforms:
            raise DcpError(
                f"{root}: item {item.fqn!r} has transform descriptors {list(st.transforms)!r} "
                "(compression, encryption or another extension): ckptguard reads none of them, "
                "so it cannot check what they would produce",
                rule=DCP_TRANSFORM,
                hint="re-save the checkpoint without storage extensions (dcp.save's default)",
            )
        if chunk is not None:
            need = DTYPE_SIZES[item.dtype or ""]
            for s in chunk.sizes:
                need *= s
            if need > st.length:
                raise DcpError(
                    f"{root}: chunk {chunk.offsets} of {item.fqn!r} holds {need} bytes of "
                    f"elements but its storage is only {st.length} bytes",
                    rule=DCP_CHUNK_SIZE,
                )
        per_file.setdefault(st.relative_path, []).append((st.offset, st.length, item.fqn))
    fds: dict[str, int] = {}
    try:
        for rel, ranges in per_file.items():
            path = os.path.join(root, rel)
            try:
                fd = os.open(path, _FLAGS)
            except FileNotFoundError:
                raise DcpError(
                    f"{path}: shard file missing (items {ranges[0][2]!r}... are stored there)",
                    rule=DCP_MISSING_SHARD,
                    hint="copy the whole checkpoint directory, every __R_S.distcp file included",
                ) from None
            except OSError as exc:
                raise DcpError(
                    f"{path}: cannot open the shard ({exc.strerror or exc}; symbolic links are "
                    "refused)",
                    rule=DCP_PATH,
                ) from None
            fds[rel] = fd
            st_ = os.fstat(fd)
            if not stat.S_ISREG(st_.st_mode):
                raise DcpError(f"{path}: the shard is not a regular file", rule=DCP_PATH)
            _check_ranges(path, ranges, st_.st_size)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return ShardReader(root, fds)


def _check_ranges(path: str, ranges: list[tuple[int, int, str]], size: int) -> None:
    ranges.sort()
    pos = 0
    for off, length, fqn in ranges:
        if off + length > size:
            raise DcpError(
                f"{path}[{off}:{length}] ({fqn}): runs past the end of the shard ({size} bytes)",
                rule=DCP_OUT_OF_BOUNDS,
            )
        if off < pos:
            raise DcpError(
                f"{path}[{off}:{length}] ({fqn}): overlaps the item before it (ends at {pos})",
                rule=DCP_OVERLAP,
            )
        if off > pos:
            raise DcpError(
                f"{path}: bytes {pos}..{off} belong to no item: the shard does not tile as the "
                "metadata says",
                rule=DCP_SHARD_GAP,
            )
        pos = off + length
    if pos != size:
        raise DcpError(
            f"{path}: bytes {pos}..{size} belong to no item: the shard does not tile as the "
            "metadata says",
            rule=DCP_SHARD_GAP,
        )
