"""http(s):// objects read by exact ``Range`` requests (the standard library's http.client).

Every response is checked before its bytes are used: a range answer must be ``206`` with a
``Content-Range`` naming exactly the bytes asked for and the object's size, and a body of
exactly that length; the object must not change between requests (``ETag``/``Last-Modified``).
A server that ignores ``Range`` (``200``) has the whole object read, up to
``RemoteOptions.max_whole`` bytes, only on the first request; anything else is a
:class:`~ckptguard._errors.RemoteError`. Transient failures (5xx, 429, resets, short bodies,
timeouts) are retried with exponential backoff; 401/403/404/410 are not.
"""

from __future__ import annotations

import http.client
import re
import ssl
import time
import urllib.parse

from ckptguard._errors import RemoteError
from ckptguard._scan_rules import (
    REMOTE_CHANGED,
    REMOTE_FORBIDDEN,
    REMOTE_HTTP_ERROR,
    REMOTE_NO_RANGE,
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
    from typing import TypeVar

    _T = TypeVar("_T")

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIABLE = re.compile(r"^bytes \*/(\d+)$")
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
# The first request asks for this much (a zip's first local header, or the start of a pickle):
# its answer also tells the object's size. More is read only where a reader asks for it.
HEAD_BYTES = 64


class _Retry(Exception):
    """A transient failure: wait and try again (the last one becomes the error)."""

    def __init__(self, error: RemoteError) -> None:
        self.error = error


class HttpSource:
    """One http(s) object: ``size``, ``read``, ``read_many``; ``bytes_read`` counts the body
    bytes received. ``head`` holds the first bytes (or the whole object, ``whole``)."""

    def __init__(self, url: str, opts: RemoteOptions) -> None:
        self.url = url
        self.opts = opts
        self._conn: http.client.HTTPConnection | None = None
        self._target = url
        self._validator: tuple[str | None, str | None] | None = None
        self.whole: bytes | None = None
        self.size, self.head = self._first()

    # ----------------------------------------------------------------- requests
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            parts = urllib.parse.urlsplit(self._target)
            host = parts.hostname or ""
            if parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    host, parts.port, timeout=self.opts.timeout,
                    context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                self._conn = http.client.HTTPConnection(host, parts.port, timeout=self.opts.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, problem: str, rule: str, hint: str | None = None) -> RemoteError:
        return RemoteError(problem, rule=rule, path=self.url, hint=hint)

    def _with_retries(self, attempt: Callable[[], _T]) -> _T:
        waits = delays(self.opts)
        while True:
            try:
                return attempt()
            except _Retry as exc:
                self.close()
                if not waits:
                    raise exc.error from None
                time.sleep(waits.pop(0))

    def _get(self, start: int, stop: int, first: bool) -> tuple[int, bytes, dict[str, str]]:
        """One GET of ``bytes=start-(stop-1)``, following redirects; returns the status, the
        body (bounded) and the headers."""
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(self._target)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            headers = {"Range": f"bytes={start}-{stop - 1}", "Accept-Encoding": "identity"}
            try:
                conn = self._connection()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                status = resp.status
                got = {k.lower(): v for k, v in resp.getheaders()}
                if status in _REDIRECTS and "location" in got:
                    resp.read(1 << 16)
                    self.close()
                    target = urllib.parse.urljoin(self._target, got["location"])
                    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                        raise self._error(
                            f"redirected to a non-HTTP location {target!r}", REMOTE_HTTP_ERROR
                        )
                    self._target = target
                    continue
                if status == 206 or (status == 200 and first):
                    body = self._body(resp, got, status, stop - start)
                else:
                    body = b""
                    self.close()
                return status, body, got
            except TimeoutError:
                raise _Retry(
                    self._error(
                        f"timed out after {self.opts.timeout:g} s (retried "
                        f"{self.opts.retries} times)",
                        REMOTE_TIMEOUT,
                        "check the network, or raise the timeout",
                    )
                ) from None
            except http.client.IncompleteRead as exc:
                raise _Retry(
                    self._error(
                        f"the server sent {len(exc.partial)} bytes and closed the connection "
                        "before the length it announced: a truncated response (retried)",
                        REMOTE_TRUNCATED,
                    )
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(
                    self._error(
                        f"connection failed: {exc} (retried {self.opts.retries} times)",
                        REMOTE_UNAVAILABLE,
                    )
                ) from None
        raise self._error(f"more than {_MAX_REDIRECTS} redirects", REMOTE_HTTP_ERROR)

    def _body(
        self, resp: http.client.HTTPResponse, got: dict[str, str], status: int, asked: int
    ) -> bytes:
        """Read the body of a range answer (exactly its Content-Length) or of a whole-object
        answer (at most max_whole bytes)."""
        limit = asked if status == 206 else self.opts.max_whole
        length = got.get("content-length")
        if "chunked" in got.get("transfer-encoding", "").lower():
            length = None
        if length is not None:
            if not length.isdigit():
                self.close()
                raise self._error(f"invalid Content-Length {length!r}", REMOTE_SIZE_MISMATCH)
            declared = int(length)
            if declared > limit:
                self.close()
                if status == 206:
                    raise self._error(
                        f"asked for {asked} bytes, the server announces {declared}",
                        REMOTE_SIZE_MISMATCH,
                    )
                raise self._no_range(declared)
            return resp.read(declared)  # IncompleteRead when the body is shorter
        chunked = "transfer-encoding" in got
        body = resp.read(limit + 1)
        self.close()
        if status == 200 and len(body) > limit:
            raise self._no_range(None)
        if status == 200 and not chunked:
            # a body that ends when the connection closes: a cut one looks complete
            raise self._error(
                "the server sent the whole object without a Content-Length: a truncated "
                "answer could not be told from a complete one",
                REMOTE_SIZE_MISMATCH,
            )
        return body

    def _no_range(self, size: int | None) -> RemoteError:
        what = f"{size}-byte object" if size is not None else "object of unknown size"
        return self._error(
            f"the server ignores range requests and sends the whole {what}: more than the "
            f"{self.opts.max_whole} bytes ckptguard reads whole (RemoteOptions.max_whole)",
            REMOTE_NO_RANGE,
            "serve the file from a server that supports HTTP range requests, or download it "
            "and scan the local copy",
        )

    def _status_error(self, status: int) -> RemoteError | _Retry:
        if status in (401, 403):
            return self._error(
                f"access denied (HTTP {status})",
                REMOTE_FORBIDDEN,
                "check the credentials or the URL's signature",
            )
        if status in (404, 410):
            return self._error(f"no such object (HTTP {status})", REMOTE_NOT_FOUND, "check the URL")
        error = self._error(
            f"the server answered HTTP {status} (retried {self.opts.retries} times)",
            REMOTE_UNAVAILABLE if status in _TRANSIENT else REMOTE_HTTP_ERROR,
        )
        return _Retry(error) if status in _TRANSIENT else error

    def _check_same(self, got: dict[str, str]) -> None:
        validator = (got.get("etag"), got.get("last-modified"))
        if self._validator is None:
            self._validator = validator
        elif validator != self._validator:
            raise self._error(
                "the object changed while it was being read (its ETag or Last-Modified "
                "differs between requests)",
                REMOTE_CHANGED,
                "scan it again once it is no longer being written",
            )

    # ------------------------------------------------------------------ reading
    def _first(self) -> tuple[int, bytes]:
        def attempt() -> tuple[int, bytes]:
            status, body, got = self._get(0, HEAD_BYTES, first=True)
            if status == 416:
                m = _UNSATISFIABLE.match(got.get("content-range", ""))
                if m and int(m.group(1)) == 0:
                    self._check_same(got)
                    return 0, b""
            if status == 200:  # Range ignored: the whole object, bounded by max_whole
                self._check_same(got)
                self.whole = body
                return len(body), body
            if status != 206:
                raise self._status_error(status)
            size = self._check_range(got, body, 0, HEAD_BYTES, None)
            self._check_same(got)
            return size, body

        return self._with_retries(attempt)

    def _check_range(
        self, got: dict[str, str], body: bytes, start: int, stop: int, size: int | None
    ) -> int:
        m = _CONTENT_RANGE.match(got.get("content-range", ""))
        if m is None:
            raise self._error(
                f"a 206 answer without a valid Content-Range ({got.get('content-range')!r})",
                REMOTE_SIZE_MISMATCH,
            )
        first, last, total = (int(g) for g in m.groups())
        if size is not None and total != size:
            raise self._error(
                f"the object's size changed from {size} to {total} bytes between requests",
                REMOTE_CHANGED,
            )
        want_last = min(stop, total) - 1
        if first != start or last != want_last:
            raise self._error(
                f"asked for bytes {start}-{want_last}, the server sent {first}-{last}",
                REMOTE_SIZE_MISMATCH,
            )
        if len(body) != last - first + 1:
            raise _Retry(
                self._error(
                    f"the server sent {len(body)} bytes for the {last - first + 1}-byte range "
                    f"{first}-{last} (retried)",
                    REMOTE_TRUNCATED,
                )
            )
        return total

    def read(self, offset: int, length: int) -> bytes:
        if self.whole is not None:
            return self.whole[offset : offset + length]
        if length <= 0:
            return b""

        def attempt() -> bytes:
            status, body, got = self._get(offset, offset + length, first=False)
            if status != 206:
                if status == 200:
                    raise self._error(
                        "the server answered a range request with the whole object (it "
                        "honoured Range on the first request)",
                        REMOTE_NO_RANGE,
                    )
                raise self._status_error(status)
            self._check_range(got, body, offset, offset + length, self.size)
            self._check_same(got)
            return body

        return self._with_retries(attempt)

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges, over up to ``concurrency`` connections at once."""
        lanes = min(self.opts.concurrency, len(ranges) // 8)
        if self.whole is not None or lanes < 2:
            return [self.read(o, n) for o, n in ranges]
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        clones = [self._clone() for _ in range(lanes)]
        chunks = [ranges[i::lanes] for i in range(lanes)]
        try:
            with ThreadPoolExecutor(max_workers=lanes) as pool:
                parts = list(pool.map(lambda c, ch: [c.read(o, n) for o, n in ch], clones, chunks))
        finally:
            for c in clones:
                c.close()
        out: list[bytes] = [b""] * len(ranges)
        for lane, part in enumerate(parts):
            out[lane::lanes] = part
        return out

    def _clone(self) -> HttpSource:
        """Another connection to the same object (same size and validator to match)."""
        other = HttpSource.__new__(HttpSource)
        other.url, other.opts, other._conn = self.url, self.opts, None
        other._target, other._validator = self._target, self._validator
        other.whole, other.size, other.head = None, self.size, self.head
        return other
