"""A tiny HTTP target on 127.0.0.1 for the load tests: counts what it serves, fails on purpose.

Paths decide the answer: ``/fail...`` gives 500, ``/missing...`` gives 404, ``/slow...`` answers
after ``slow_s``, anything registered in ``pages`` gets that body, the rest gets 200 ``ok``.
Each request is counted by path and by the generator header our locustfiles send, so a test can
compare what the target served with what Locust reports.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pytest_meshcheck.load.spec import GENERATOR_HEADER


class Target:
    def __init__(self, *, slow_s: float = 0.2) -> None:
        self.slow_s = slow_s
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self.by_path: collections.Counter[str] = collections.Counter()
        self.by_generator: collections.Counter[str] = collections.Counter()
        self.hosts: collections.Counter[str] = collections.Counter()
        self.url = ""

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_path.values())

    def record(self, path: str, generator: str, host: str) -> None:
        with self._condition:
            self.by_path[path] += 1
            self.by_generator[generator] += 1
            self.hosts[host] += 1
            self._condition.notify_all()

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """True once at least ``count`` requests were served; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while sum(self.by_path.values()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path in self.pages:
            return self.pages[path]
        if path.startswith("/fail"):
            return 500, "text/plain", b"boom"
        if path.startswith("/missing"):
            return 404, "text/plain", b"not here"
        if path.startswith("/slow"):
            # Deliberate latency: this path simulates a slow backend.
            time.sleep(self.slow_s)
        return 200, "text/plain", b"ok"


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, content_type, body = target.answer(self.path)
            head = (
                f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            # One write for head and body: split writes meet delayed ACKs and add 40 ms each.
            self.wfile.write(head + body)
            target.record(self.path, self.headers.get(GENERATOR_HEADER, ""), self.headers.get("Host", ""))

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(target: Target) -> Iterator[Target]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(target))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    target.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
