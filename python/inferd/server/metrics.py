"""The Prometheus endpoint: ``GET /metrics`` on an HTTP port of its own, served on the
server's event loop (so a scrape reads the engine's state between two requests, never in the
middle of one).

A deliberately small HTTP/1.1 server: it answers ``GET /metrics`` (and ``/``) with the text
exposition format and anything else with 404, one request per connection. Scrapers
(Prometheus, the OpenTelemetry Collector's prometheus receiver, curl) need no more.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..engine import Engine
from ..telemetry import MetricsCollector, triton_text

__all__ = ["MetricsEndpoint", "start_metrics"]

logger = logging.getLogger("inferd.server")

#: The most bytes of request head the endpoint reads.
_MAX_HEAD = 16 * 1024


class MetricsEndpoint:
    def __init__(self, server: asyncio.Server, registry: CollectorRegistry) -> None:
        self._server = server
        self.registry = registry
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start_metrics(engine: Engine, address: str) -> MetricsEndpoint:
    """Serves ``engine``'s metrics on ``address`` (host:port; port 0 picks a free one)."""
    telemetry = engine.telemetry
    assert telemetry is not None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(telemetry, engine.describe, {"grpc": grpc.__version__}))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = head[:_MAX_HEAD].partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method in (b"GET", b"HEAD") and path in (b"/metrics", b"/"):
                body = generate_latest(registry)
                if telemetry.triton:
                    body += triton_text(telemetry, engine.describe())
                status, content_type = b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, content_type = b"not found: GET /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + (body if method != b"HEAD" else b"")
            )  # fmt: skip
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # the scraper went, or sent no request: nothing to answer
        except Exception:
            logger.exception("metrics endpoint: a scrape failed")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    host, port = _split(address)
    server = await asyncio.start_server(answer, host, port, limit=_MAX_HEAD)
    return MetricsEndpoint(server, registry)
