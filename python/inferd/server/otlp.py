"""How spans leave the server: OTLP over gRPC or HTTP/protobuf, as ``[server.tracing]`` and the
standard ``OTEL_EXPORTER_OTLP_*`` variables say. The engine's :class:`~inferd.tracing.Tracing`
encodes; this only delivers."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from ..config import ServiceConfig, TracingConfig
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
    """What sends one serialised ExportTraceServiceRequest to the collector."""
    if (config.exporter or _protocol(env)) == "otlp-http":
        return _http_sender(config, env)
    return _grpc_sender(config, env)


def _protocol(env: Mapping[str, str]) -> str:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    return "otlp-http" if protocol.strip().lower().startswith("http") else "otlp-grpc"


def _headers(env: Mapping[str, str]) -> list[tuple[str, str]]:
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    pairs = [item.split("=", 1) for item in raw.split(",") if "=" in item]
    return [(key.strip().lower(), urllib.parse.unquote(value.strip())) for key, value in pairs]


def _grpc_sender(config: TracingConfig, env: Mapping[str, str]) -> Callable[[bytes], None]:
    endpoint = config.endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4317"
    secure = endpoint.startswith("https://")
    target = endpoint.split("://", 1)[-1].rstrip("/")
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
    export: Any = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    metadata = tuple(_headers(env)) or None

    def send(body: bytes) -> None:
        export(body, timeout=10, metadata=metadata)

    return send


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
