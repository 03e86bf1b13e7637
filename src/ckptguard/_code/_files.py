"""File access for ``ckptguard code``: stay inside the tree, read only bounded regular files.

* Walking a directory never follows a symbolic link: linked files and directories are listed
  as skipped (a link may point anywhere, and a linked directory may loop).
* A file is opened relative to the directory it was found in, each directory below the given
  root opened with ``O_NOFOLLOW`` from its parent's descriptor: a directory swapped for a link
  after the walk is refused, not followed. The file itself is opened with ``O_NOFOLLOW |
  O_NONBLOCK`` (a FIFO cannot block the open) and checked with ``fstat`` on that descriptor
  (what was checked is what is read): only a regular file of at most :data:`MAX_SOURCE_BYTES`.
* A path named on the command line is the user's choice: a link there is read through, but
  ``--fix`` never writes through a link (it names the target to fix instead).
* Writes go to a new temporary file in the same directory (by descriptor), then ``rename``
  over the name: never through a link, and only if the name still holds the file that was read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAX_SOURCE_BYTES = 10 * 1024 * 1024
"""Largest source file ``ckptguard code`` reads (larger ones are reported, not read)."""

SKIP_DIRS = frozenset(
    {
        ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pytest_cache",
        ".ruff_cache", ".svn", ".tox", ".venv", "__pycache__", "__pypackages__", "_build",
        "buck-out", "build", "dist", "node_modules", "site-packages", "venv",
    }
)  # fmt: skip

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Unreadable(Exception):
    """A source that cannot be read safely; ``message`` says why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Found:
    """A ``*.py`` file to check: ``tree`` is the directory walked to find it (None: named)."""

    path: str
    tree: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A path deliberately not read, with the reason (shown, never an error)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Failed:
    """A path that cannot be checked (missing, not a regular file, a directory not listed)."""

    path: str
    message: str
    hint: str | None = None


_REGULAR_ONLY = "ckptguard code reads only regular *.py files (and directories of them)"


def kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def discover(paths: Sequence[str]) -> Iterator[Found | Skipped | Failed]:
    """What to check under ``paths``, in a stable order. Nothing is opened here but
    directories; a FIFO or device is reported from its ``stat``, never opened."""
    for path in paths:
        try:
            st = os.stat(path)  # a named path may be a link: the user chose it
        except OSError:
            yield Failed(
                path,
                "no such file or directory",
                hint="check the path; ckptguard code takes Python files and directories",
            )
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path)
        elif stat.S_ISREG(st.st_mode):
            yield Found(path)
        else:
            yield Failed(path, f"not read: {kind(st.st_mode)}", hint=_REGULAR_ONLY)


def _walk(root: str) -> Iterator[Found | Skipped | Failed]:
    seen: set[tuple[int, int]] = set()  # bind mounts can loop without a symlink
    stack = [root]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = sorted(it, key=lambda e: e.name)
            st = os.stat(top)
        except OSError as exc:
            yield Failed(top, f"cannot list this directory: {exc.strerror or exc}")
            continue
        if (st.st_dev, st.st_ino) in seen:
            yield Skipped(top, "directory already walked (a mount loop)")
            continue
        seen.add((st.st_dev, st.st_ino))
        subdirs: list[str] = []
        for entry in entries:
            if entry.is_symlink():
                if entry.name.endswith(".py") or (_walked(entry) and _is_dir(entry.path)):
                    target = _target(entry.path)
                    yield Skipped(entry.path, f"symbolic link (to {target}), not followed")
            elif entry.is_dir(follow_symlinks=False):
                if _walked(entry):
                    subdirs.append(entry.path)
            elif not entry.name.endswith(".py"):
                continue
            elif entry.is_file(follow_symlinks=False):
                yield Found(entry.path, tree=root)
            else:  # a FIFO, device or socket named *.py: never opened
                try:
                    what = kind(entry.stat(follow_symlinks=False).st_mode)
                except OSError:
                    what = "not a regular file"
                yield Failed(entry.path, f"not read: {what}", hint=_REGULAR_ONLY)
        stack.extend(reversed(subdirs))


def _walked(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return (
        name not in SKIP_DIRS
        and not name.endswith(".egg-info")
        and not os.path.lexists(os.path.join(entry.path, "pyvenv.cfg"))
    )


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _target(link: str) -> str:
    try:
        return repr(os.readlink(link))
    except OSError:
        return "?"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Source:
    """A file's bytes, and what is needed to replace it safely (``dir_fd`` stays open until
    :meth:`close`)."""

    data: bytes
    dir_fd: int
    name: str
    identity: tuple[int, int]  # (st_dev, st_ino) of the file read
    mode: int
    link_target: str | None  # a named link read through: never written

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)


def read_source(found: Found) -> Source:
    """Open ``found`` without following links below its tree; read it if it is a regular
    file of at most :data:`MAX_SOURCE_BYTES`. Raises :class:`Unreadable`."""
    dir_fd = _open_parent(found)
    try:
        return _read_in(dir_fd, found)
    except BaseException:
        os.close(dir_fd)
        raise


def _open_parent(found: Found) -> int:
    if found.tree is None:
        parent = os.path.dirname(found.path) or "."
        try:
            return os.open(parent, _O_DIR)
        except OSError as exc:
            raise Unreadable(f"cannot open its directory: {exc.strerror or exc}") from None
    rel = os.path.relpath(os.path.dirname(found.path), found.tree)
    try:
        fd = os.open(found.tree, _O_DIR)
    except OSError as exc:
        raise Unreadable(f"cannot open the directory walked: {exc.strerror or exc}") from None
    for part in [] if rel == os.curdir else rel.split(os.sep):
        try:
            child = os.open(part, _O_DIR | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            raise Unreadable(
                f"directory {part!r} changed while being checked ({exc.strerror or exc}): "
                "not followed",
                hint="check the tree again when nothing else is changing it",
            ) from None
        os.close(fd)
        fd = child
    return fd


def _read_in(dir_fd: int, found: Found) -> Source:
    name = os.path.basename(found.path)
    link_target = None
    try:  # not opened at all when it is already known not to be a regular file (a device's
        # open can have effects); fstat below checks what was opened
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISLNK(mode):
        if found.tree is not None:  # a file in the walked tree became a link: not followed
            raise Unreadable(
                "it is a symbolic link now (it was not when the tree was walked): not followed"
            )
        link_target = os.path.realpath(found.path)
        try:
            mode = os.stat(found.path).st_mode
        except OSError as exc:
            raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise Unreadable(f"not read: {kind(mode)}", hint=_REGULAR_ONLY)
    try:
        if link_target is None:
            fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        else:  # a named link: read through
            fd = os.open(found.path, _O_FILE & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped since the stat above
            raise Unreadable(f"not read: {kind(st.st_mode)}", hint=_REGULAR_ONLY)
        if st.st_size > MAX_SOURCE_BYTES:
            raise Unreadable(_too_large(st.st_size), hint=_TOO_LARGE_HINT)
        data = _read_bounded(fd)
    finally:
        os.close(fd)
    return Source(data, dir_fd, name, (st.st_dev, st.st_ino), st.st_mode & 0o7777, link_target)


_TOO_LARGE_HINT = "a Python source this large is likely generated; check it another way"


def _too_large(size: int | None) -> str:
    got = "more" if size is None else f"{size} bytes"
    return f"not read: {got}, over the {MAX_SOURCE_BYTES // (1024 * 1024)} MiB source limit"


def _read_bounded(fd: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, MAX_SOURCE_BYTES + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_SOURCE_BYTES:  # it grew after fstat
            raise Unreadable(_too_large(None), hint=_TOO_LARGE_HINT)


# --------------------------------------------------------------------------- writing


def replace_source(source: Source, data: bytes) -> None:
    """Replace the file read as ``source`` with ``data``, atomically, in the same directory
    (by descriptor), keeping its permission bits. Raises :class:`Unreadable` if the name no
    longer holds that file (changed, or now a link) and ``OSError`` on write errors."""
    if source.link_target is not None:
        raise Unreadable(
            "not fixed: it is a symbolic link, and --fix never writes through one",
            hint=f"fix the file it points to: ckptguard code --fix {source.link_target}",
        )
    try:
        now = os.stat(source.name, dir_fd=source.dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise Unreadable(f"not fixed: it changed while being checked ({exc.strerror})") from None
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != source.identity:
        raise Unreadable("not fixed: it was replaced while being checked; left as it is now")
    tmp = f".{source.name}.{secrets.token_hex(6)}.ckptguard"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=source.dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), source.mode)
            os.fsync(fh.fileno())
        os.replace(tmp, source.name, src_dir_fd=source.dir_fd, dst_dir_fd=source.dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=source.dir_fd)
        raise
