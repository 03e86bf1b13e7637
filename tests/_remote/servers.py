"""Servers the remote tests start on localhost (free ports, stopped after): an HTTP server
that honours Range (and, per object, misbehaves on purpose), and moto's S3 server behind a
request log. Both record every request, so tests assert what byte ranges were read."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


@dataclass
class Request:
    path: str
    range: tuple[int, int] | None  # [start, stop) asked for
    status: int = 0
    sent: int = 0  # body bytes sent


@dataclass
class Behaviour:
    """How the server treats one object."""

    mode: str = "ok"  # ok, ignore-range, short-body, cut, long-length, wrong-range, wrong-total,
    #                   status, fail-then-ok, slow, no-length, change-etag
    status: int = 200  # for mode "status"
    failures: int = 0  # for mode "fail-then-ok": how many 500s first
    delay: float = 0.0  # for mode "slow"


@dataclass
class RangeServer:
    objects: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def requests(self, name: str) -> list[Request]:
        return [r for r in self.log if r.path == "/" + name]


def _handler(state: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body in one write (no delayed-ACK stalls)

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            m = _RANGE.match(self.headers.get("Range", ""))
            rng = (int(m.group(1)), int(m.group(2)) + 1) if m else None
            req = Request(self.path, rng)
            state.log.append(req)
            data = state.objects.get(name)
            how = state.behaviour.get(name, Behaviour())
            if data is None:
                return self._send(req, 404, b"not found")
            if how.mode == "status":
                return self._send(req, how.status, b"no")
            if how.mode == "fail-then-ok" and how.failures > 0:
                how.failures -= 1
                return self._send(req, 500, b"oops")
            if how.mode == "slow":
                time.sleep(how.delay)
            etag = '"v1"'
            if how.mode == "change-etag" and len(state.requests(name)) > 1:
                etag = '"v2"'
            if rng is None or how.mode in ("ignore-range",):
                return self._send(req, 200, data, {"ETag": etag})
            if how.mode == "ignore-range-no-length":  # the body ends when the connection closes
                return self._send(req, 200, data, {"ETag": etag}, length=-1, close=True)
            start, stop = rng
            if start >= len(data):
                return self._send(
                    req, 416, b"", {"Content-Range": f"bytes */{len(data)}", "ETag": etag}
                )
            stop = min(stop, len(data))
            body = data[start:stop]
            total = len(data)
            first, last = start, stop - 1
            headers = {"ETag": etag}
            length = len(body)
            if how.mode == "wrong-total":
                total += 1000
            if how.mode == "huge-total":  # an object size no mapping can hold
                total = 1 << 62
            if how.mode == "wrong-range":
                first += 1
            if how.mode == "long-length":  # announces more than it sends, then closes
                length += 100
            if how.mode == "short-body":  # a truncated object: fewer bytes, honest length
                body = body[: len(body) // 2]
                length = len(body)
            if how.mode == "cut":  # the connection drops mid-body
                body = body[: len(body) // 2]
            headers["Content-Range"] = f"bytes {first}-{last}/{total}"
            self._send(req, 206, body, headers, length, close=how.mode in ("long-length", "cut"))

        def _send(  # noqa: PLR0917
            self,
            req: Request,
            status: int,
            body: bytes,
            headers: dict[str, str] | None = None,
            length: int | None = None,
            close: bool = False,
        ) -> None:
            req.status = status
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if length != -1:
                self.send_header("Content-Length", str(len(body) if length is None else length))
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)
                self.wfile.flush()
                req.sent = len(body)
            if close:
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def range_server() -> Iterator[RangeServer]:
    state = RangeServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    log: list[Request]

    def storage_options(self) -> dict[str, object]:
        return {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }

    def ranges(self, key: str) -> list[tuple[int, int] | None]:
        return [r.range for r in self.log if r.path.endswith("/" + key)]


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in server mode, its WSGI app wrapped to log each request's path and Range."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    log: list[Request] = []
    app = DomainDispatcherApplication(create_backend_app)

    def logged(environ: dict[str, object], start_response: object) -> object:
        m = _RANGE.match(str(environ.get("HTTP_RANGE", "")))
        rng = (int(m.group(1)), int(m.group(2)) + 1) if m else None
        if environ.get("REQUEST_METHOD") == "GET":
            log.append(Request(str(environ.get("PATH_INFO", "")), rng))
        return app(environ, start_response)  # type: ignore[arg-type]

    server = make_server("127.0.0.1", 0, logged, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Server(f"http://127.0.0.1:{server.server_port}", log)
    finally:
        server.shutdown()
        server.server_close()
