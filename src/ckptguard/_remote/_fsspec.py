"""Objects of any fsspec filesystem (``s3://``, ``gs://``, ``az://``, ``hf://``, ...) read by
exact byte ranges (``cat_file``/``cat_ranges``), and prefixes listed recursively.

fsspec is imported only here, when a URL of such a protocol is scanned
(``pip install 'ckptguard[remote]'``). Every read must return exactly the bytes asked for;
transient failures are retried with exponential backoff; a missing object, a denied access and
a timeout become a :class:`~ckptguard._errors.RemoteError` with its ``remote-*`` rule.
"""

from __future__ import annotations

import asyncio
import time

from ckptguard._errors import RemoteError, UsageError
from ckptguard._scan_rules import (
    REMOTE_FORBIDDEN,
    REMOTE_NOT_FOUND,
    REMOTE_SIZE_MISMATCH,
    REMOTE_TIMEOUT,
    REMOTE_TRUNCATED,
    REMOTE_UNAVAILABLE,
)

from ._options import RemoteOptions, delays

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _T = TypeVar("_T")

_GLOB_CHARS = frozenset("*?[")


def filesystem(url: str, opts: RemoteOptions) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path within it."""
    try:
        import fsspec  # noqa: PLC0415 - the optional extra
        from fsspec.core import split_protocol  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            f"{url}: scanning remote objects needs fsspec",
            hint="pip install 'ckptguard[remote]'",
        ) from None
    protocol, _ = split_protocol(url)
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise UsageError(
            f"{url}: no filesystem for {protocol}:// ({exc})",
            hint=f"install the fsspec package for {protocol}:// (e.g. s3fs, gcsfs, adlfs, "
            "huggingface_hub)",
        ) from None
    fs = cls(**dict(opts.storage_options))
    return fs, cls._strip_protocol(url)


def _classify(exc: BaseException, url: str, opts: RemoteOptions) -> RemoteError | None:
    """The error for a failure that is not worth retrying, or None for a transient one."""
    if isinstance(exc, FileNotFoundError):
        return RemoteError("no such object", rule=REMOTE_NOT_FOUND, path=url, hint="check the URL")
    if isinstance(exc, PermissionError):
        return RemoteError(
            "access denied",
            rule=REMOTE_FORBIDDEN,
            path=url,
            hint="check the credentials (storage options / environment) for this bucket",
        )
    return None


def _transient(exc: BaseException, url: str, opts: RemoteOptions) -> RemoteError:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return RemoteError(
            f"timed out (retried {opts.retries} times)",
            rule=REMOTE_TIMEOUT,
            path=url,
            hint="check the network, or raise the timeout",
        )
    return RemoteError(
        f"read failed: {type(exc).__name__}: {exc} (retried {opts.retries} times)",
        rule=REMOTE_UNAVAILABLE,
        path=url,
    )


def retrying(call: Callable[[], _T], url: str, opts: RemoteOptions) -> _T:
    waits = delays(opts)
    while True:
        try:
            return call()
        except RemoteError:
            raise
        except Exception as exc:  # fsspec backends raise anything: classify, never pass on
            final = _classify(exc, url, opts)
            if final is not None:
                raise final from None
            if not waits:
                raise _transient(exc, url, opts) from None
            time.sleep(waits.pop(0))


class FsspecSource:
    """One object of an fsspec filesystem: ``size``, exact ``read`` and ``read_many``."""

    def __init__(self, url: str, opts: RemoteOptions, fs: Any = None, path: str = "") -> None:
        self.url, self.opts = url, opts
        if fs is None:
            fs, path = filesystem(url, opts)
        self.fs, self.path = fs, path
        info = retrying(lambda: fs.info(path), url, opts)
        if info.get("type") == "directory":
            raise RemoteError(
                "a prefix (directory), not an object",
                rule=REMOTE_NOT_FOUND,
                path=url,
                hint=f"end the URL with '/' to scan every object under it: {url.rstrip('/')}/",
            )
        size = info.get("size")
        if not isinstance(size, int) or size < 0:
            raise RemoteError(
                "the storage does not tell the object's size", rule=REMOTE_SIZE_MISMATCH, path=url
            )
        self.size = size

    def close(self) -> None:
        pass

    def _checked(self, data: object, offset: int, length: int) -> bytes:
        if not isinstance(data, bytes) or len(data) != length:
            got = len(data) if isinstance(data, bytes) else type(data).__name__
            raise RemoteError(
                f"asked for {length} bytes at offset {offset}, got {got}: the object is "
                f"shorter than its listed size ({self.size}) or the server ignores ranges",
                rule=REMOTE_TRUNCATED,
                path=self.url,
            )
        return data

    def read(self, offset: int, length: int) -> bytes:
        data = retrying(
            lambda: self.fs.cat_file(self.path, start=offset, end=offset + length),
            self.url,
            self.opts,
        )
        return self._checked(data, offset, length)

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        if len(ranges) == 1:
            return [self.read(*ranges[0])]
        n = len(ranges)
        paths, starts = [self.path] * n, [o for o, _ in ranges]
        ends = [o + k for o, k in ranges]
        datas = retrying(
            lambda: self.fs.cat_ranges(paths, starts, ends, on_error="raise"), self.url, self.opts
        )
        return [self._checked(d, o, k) for d, (o, k) in zip(datas, ranges, strict=True)]


def is_prefix(url: str) -> bool:
    """A URL that names many objects: a prefix ending in '/', or a glob."""
    return url.endswith("/") or any(c in _GLOB_CHARS for c in url.split("://", 1)[-1])


def list_prefix(url: str, opts: RemoteOptions) -> list[str]:
    """Every object under a prefix (recursively) or matching a glob, as URLs, sorted."""
    fs, path = filesystem(url, opts)
    protocol = url.split("://", 1)[0]
    if any(c in _GLOB_CHARS for c in path):
        found = retrying(lambda: fs.glob(path, detail=True), url, opts)
        names = [p for p, info in found.items() if info.get("type") != "directory"]
    else:
        names = retrying(lambda: fs.find(path.rstrip("/") + "/"), url, opts)
    return sorted(f"{protocol}://{fs._strip_protocol(n)}" for n in names)
