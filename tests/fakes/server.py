"""A small threaded HTTP/1.1 server for fake APIs (standard library only)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the fake answers: a JSON body, or a stream of Server-Sent Events."""

    status: int = 200
    body: Any = None
    #: SSE ``data:`` payloads (dicts are JSON-encoded; strings are sent as they are).
    events: list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeServer:
    """Serves ``handle(method, path, body) -> Reply`` on 127.0.0.1 at a free port.

    ``fail(status, times)`` makes the next ``times`` requests answer ``status`` (with a JSON
    error body in the API's format, from ``error_body``). ``requests`` records every request.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: deque[int] = deque()
        #: Seconds to wait before each SSE event (lets a test cancel mid-stream).
        self.event_delay_s = 0.0
        #: SSE events actually written to the socket.
        self.events_sent = 0
        #: Seconds to wait before answering (provokes client timeouts).
        self.reply_delay_s = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {key.lower(): value for key, value in self.headers.items()}
                with fake._lock:
                    fake.requests.append(Recorded(method, self.path, headers, body))
                    failure = fake.failures.popleft() if fake.failures else None
                if fake.reply_delay_s:
                    time.sleep(fake.reply_delay_s)
                if failure is not None:
                    reply = Reply(failure, fake.error_body(failure))
                else:
                    try:
                        reply = fake.handle(method, self.path.split("?")[0], body)
                    except Exception as error:  # a bug in the fake: answer 500 and say why
                        reply = Reply(500, {"error": f"fake server: {error!r}"})
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.events is None:
                    data = json.dumps(reply.body).encode()
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(reply.status)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for event in reply.events:
                        if fake.event_delay_s:
                            time.sleep(fake.event_delay_s)
                        text = event if isinstance(event, str) else json.dumps(event)
                        self.wfile.write(f"data:{text}\n\n".encode())
                        self.wfile.flush()
                        with fake._lock:
                            fake.events_sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-api", daemon=True)
        self._thread.start()

    def handle(self, method: str, path: str, body: Any) -> Reply:
        return Reply(404, self.error_body(404))

    def error_body(self, status: int) -> Any:
        return {"error": f"fake error {status}"}

    def fail(self, status: int, times: int = 1) -> None:
        with self._lock:
            self.failures.extend([status] * times)

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path.split("?")[0] == path)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.failures.clear()
            self.events_sent = 0
        self.event_delay_s = 0.0
        self.reply_delay_s = 0.0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def words(text: str) -> Iterator[str]:
    """The text as pieces that keep their leading spaces, like tokens."""
    first = True
    for word in text.split(" "):
        yield word if first else " " + word
        first = False


def mapping(body: Any) -> Mapping[str, Any]:
    return body if isinstance(body, Mapping) else {}
