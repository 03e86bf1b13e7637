"""How remote objects are read: timeouts, retries, concurrency and the whole-read cap."""

from __future__ import annotations

import re

from ckptguard._record import Record, set_field

# A URL names a remote object or prefix ("s3://bucket/models/", "https://host/x.pt", any fsspec
# protocol); a Windows drive letter ("C:\\...") has no "//" after its colon.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# A server that ignores range requests sends the whole object: it is read, into memory, only
# up to this size; a larger one is an error (remote-no-range). Documented in docs/remote.md.
MAX_WHOLE_READ = 64 << 20


def is_url(target: object) -> bool:
    """Whether a scan target is a URL (scanned by range reads) rather than a local path."""
    return isinstance(target, str) and _URL.match(target) is not None


class RemoteOptions(Record):
    """Settings of a remote scan (picklable: Dask workers receive them)."""

    __slots__ = (  # noqa: RUF023 - field order
        "concurrency", "timeout", "retries", "backoff", "max_whole", "include", "exclude",
        "storage_options",
    )  # fmt: skip
    concurrency: int  # objects read at the same time (per process)
    timeout: float  # seconds per request
    retries: int  # retries of a transient failure (5xx, 429, reset, timeout)
    backoff: float  # first retry delay in seconds, doubled each time (with jitter)
    max_whole: int  # MAX_WHOLE_READ
    include: tuple[str, ...]  # globs: objects under a listed prefix scanned only if one matches
    exclude: tuple[str, ...]  # globs: objects under a listed prefix never scanned
    storage_options: tuple[tuple[str, object], ...]  # passed to fsspec.filesystem(protocol)

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        concurrency: int = 8,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.2,
        max_whole: int = MAX_WHOLE_READ,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        storage_options: tuple[tuple[str, object], ...] = (),
    ) -> None:
        set_field(self, "concurrency", max(1, concurrency))
        set_field(self, "timeout", timeout)
        set_field(self, "retries", max(0, retries))
        set_field(self, "backoff", backoff)
        set_field(self, "max_whole", max_whole)
        set_field(self, "include", tuple(include))
        set_field(self, "exclude", tuple(exclude))
        set_field(self, "storage_options", tuple(storage_options))


def delays(opts: RemoteOptions) -> list[float]:
    """The waits before each retry: exponential backoff with jitter."""
    import random  # noqa: PLC0415

    return [opts.backoff * (2**i) * (0.5 + random.random()) for i in range(opts.retries)]  # noqa: S311
