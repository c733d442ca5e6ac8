"""A loopback HTTP server standing in for the sources; records when each request arrived.

Used by the source tests and by the benchmarks (``bench_rate_limit``, ``bench_upstream_calls``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

SENT_AT_HEADER = "X-Sent-At"


def stamp_send_time(client: httpx.Client) -> None:
    """Make ``client`` tell the stub when it sent each request.

    On a loaded machine the stub's own threads may see a request late; the
    send time is what the limiter controls.
    """

    def stamp(request: httpx.Request) -> None:
        request.headers[SENT_AT_HEADER] = repr(time.time())

    client.event_hooks["request"] = [*client.event_hooks["request"], stamp]


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: Mapping[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = {path: json.dumps(body).encode() for path, body in routes.items()}
        self.arrivals: list[tuple[str, float]] = []
        # The client-side port of each request's connection.
        self.client_ports: list[int] = []
        # When the client says it sent each request (``X-Sent-At``, epoch seconds).
        self.sent: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        # How long every answer takes, like a real API's latency.
        self.delay_seconds = 0.0

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def arrival_times(self, prefix: str) -> list[float]:
        with self.lock:
            return sorted(t for path, t in self.arrivals if path.startswith(prefix))

    def sent_times(self, prefix: str) -> list[float]:
        with self.lock:
            return sorted(t for path, t in self.sent if path.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        arrived = time.monotonic()
        path = urlsplit(self.path).path
        with self.server.lock:
            self.server.arrivals.append((path, arrived))
            self.server.client_ports.append(self.client_address[1])
            sent_at = self.headers.get(SENT_AT_HEADER)
            if sent_at is not None:
                self.server.sent.append((path, float(sent_at)))
        body = self.server.routes.get(path)
        if self.server.delay_seconds:
            time.sleep(self.server.delay_seconds)
        self.send_response(200 if body is not None else 404)
        payload = body if body is not None else b'{"code":404,"message":"not found"}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``arrivals``."""


@contextmanager
def stub_server(routes: Mapping[str, Any]) -> Iterator[StubServer]:
    server = StubServer(routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of arrivals within any half-open window of ``window`` seconds."""
    most = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most
