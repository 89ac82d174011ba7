"""How spans leave the server: OTLP over gRPC or HTTP/protobuf, as ``[server.tracing]`` and the
standard ``OTEL_EXPORTER_OTLP_*`` variables say. The engine's :class:`~inferd.tracing.Tracing`
encodes; this only delivers.

OTLP/gRPC goes out on the server's own event loop (a ``grpc.aio`` channel; the export thread
hands it each batch and waits): a blocking grpc channel beside the ``grpc.aio`` server cost a
tenth of the server's throughput at 100% sampling (benches/README.md)."""

from __future__ import annotations

import asyncio
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from ..config import ServiceConfig
from ..config_server import TracingConfig
from ..tracing import Tracing, tracing_enabled

__all__ = ["otlp_sender", "make_tracing"]


def make_tracing(config: ServiceConfig, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The server's tracing, or None when it is off."""
    env = os.environ if environ is None else environ
    tracing = config.server.tracing
    if not tracing_enabled(tracing, env):
        return None
    return Tracing(tracing, otlp_sender(tracing, env), env)


def otlp_sender(config: TracingConfig, env: Mapping[str, str]) -> Callable[[bytes], None]:
    """What sends one serialised ExportTraceServiceRequest to the collector (from the export
    thread). OTLP/gRPC needs a running event loop, the server's: call this from it."""
    if (config.exporter or _protocol(env)) == "otlp-http":
        return _http_sender(config, env)
    return _GrpcSender(config, env, asyncio.get_running_loop())


def _protocol(env: Mapping[str, str]) -> str:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    return "otlp-http" if protocol.strip().lower().startswith("http") else "otlp-grpc"


def _headers(env: Mapping[str, str]) -> list[tuple[str, str]]:
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    pairs = [item.split("=", 1) for item in raw.split(",") if "=" in item]
    return [(key.strip().lower(), urllib.parse.unquote(value.strip())) for key, value in pairs]


class _GrpcSender:
    """OTLP/gRPC through a ``grpc.aio`` channel on ``loop``, made at the first export."""

    _TIMEOUT_S = 10

    def __init__(self, config: TracingConfig, env: Mapping[str, str], loop: asyncio.AbstractEventLoop) -> None:
        endpoint = config.endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4317"
        self._secure = endpoint.startswith("https://")
        self._target = endpoint.split("://", 1)[-1].rstrip("/")
        self._metadata = tuple(_headers(env)) or None
        self._loop = loop
        self._channel: grpc.aio.Channel | None = None
        self._export: Any = None

    def __call__(self, body: bytes) -> None:
        """Sends ``body`` and waits for the answer (the export thread's backpressure)."""
        asyncio.run_coroutine_threadsafe(self._send(body), self._loop).result(self._TIMEOUT_S + 5)

    async def _send(self, body: bytes) -> None:
        if self._export is None:
            if self._secure:
                self._channel = grpc.aio.secure_channel(self._target, grpc.ssl_channel_credentials())
            else:
                self._channel = grpc.aio.insecure_channel(self._target)
            self._export = self._channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        await self._export(body, timeout=self._TIMEOUT_S, metadata=self._metadata)

    def close(self) -> None:
        """Closes the channel (from a thread other than the loop's, as the export thread's
        last act)."""
        if self._channel is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._channel.close(), self._loop).result(self._TIMEOUT_S)


def _http_sender(config: TracingConfig, env: Mapping[str, str]) -> Callable[[bytes], None]:
    endpoint = config.endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
        endpoint = f"{base}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf", **dict(_headers(env))}

    def send(body: bytes) -> None:
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    return send
