"""The ``[server]`` table's sub-tables: bearer tokens, TLS, metrics and traces (validated as
:mod:`inferd.config` reads them; see docs/configuration.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ConfigError

__all__ = ["AuthConfig", "AuthToken", "DEFAULT_BUCKETS", "MetricsConfig", "Strict", "TLSConfig", "TracingConfig", "ascending"]


class Strict(BaseModel):
    """The base of every configuration table: unknown keys are errors, and a table once read
    does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthToken(Strict):
    """One bearer token that clients present as ``authorization: Bearer <token>``."""

    name: str
    #: The environment variable that holds the token (preferred: keeps secrets out of files).
    token_env: str | None = None
    #: The token itself, for tests and local use.
    token: str | None = Field(default=None, repr=False)
    #: The models this token may use; ``["*"]`` means all.
    models: list[str] = ["*"]
    #: Requests a second this token may make (a token bucket, all RPCs counted); more answer
    #: RESOURCE_EXHAUSTED with a retry hint. ``burst``: how many may come at once (default:
    #: one second's worth, ``rate`` rounded up).
    rate: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> AuthToken:
        if (self.token_env is None) == (self.token is None):
            raise ValueError(f"auth token {self.name!r}: set exactly one of token_env, token")
        if self.burst is not None and self.rate is None:
            raise ValueError(f"auth token {self.name!r}: burst goes with rate")
        return self

    def secret(self) -> str:
        """The token's value (read from the environment when ``token_env`` is set)."""
        if self.token is not None:
            return self.token
        assert self.token_env is not None
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError(f"auth token {self.name!r}: environment variable {self.token_env} is not set")
        return value


class AuthConfig(Strict):
    """Bearer-token authentication for the Inference service (health and reflection stay open)."""

    tokens: list[AuthToken] = []


class TLSConfig(Strict):
    """``[server.tls]``: serve over TLS (paths relative to the configuration file, PEM)."""

    #: The server's certificate chain.
    cert: str
    #: The certificate's private key.
    key: str
    #: Mutual TLS: accept only clients whose certificate this CA signed.
    client_ca: str | None = None


#: ``[server] loop``: the event loop to serve on.
EventLoop = Literal["auto", "uvloop", "asyncio"]
EVENT_LOOPS: tuple[str, ...] = get_args(EventLoop)


#: Request and stage durations' histogram buckets, in seconds: 100 µs to 60 s.
DEFAULT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def ascending(buckets: list[float]) -> list[float]:
    if not buckets or any(b <= a for a, b in zip(buckets, buckets[1:])) or buckets[0] <= 0:
        raise ValueError("buckets must be positive and strictly ascending")
    return buckets


class MetricsConfig(Strict):
    """The ``[server.metrics]`` table: Prometheus metrics on an HTTP endpoint of their own."""

    enabled: bool = True
    #: host:port of the ``/metrics`` endpoint; port 0 picks a free one. With ``--workers N``,
    #: worker i listens on port + i (each worker reports its own series).
    address: str = "127.0.0.1:8002"
    #: Duration histograms' buckets in seconds (a model's ``metrics_buckets`` overrides them).
    buckets: list[float] = list(DEFAULT_BUCKETS)
    #: "triton": also Triton's own names (nv_inference_*) for what inferd measures alike, so
    #: dashboards made for Triton work as they are.
    compat: Literal["none", "triton"] = "none"

    _buckets = field_validator("buckets")(ascending)


class TracingConfig(Strict):
    """The ``[server.tracing]`` table: OpenTelemetry traces (the ``otel`` extra)."""

    #: Off unless set here, by INFERD_TRACING, or by the standard OTEL_TRACES_EXPORTER=otlp.
    enabled: bool = False
    #: How spans leave: OTLP over gRPC or HTTP (None: as OTEL_EXPORTER_OTLP_PROTOCOL says, gRPC
    #: by default).
    exporter: Literal["otlp-grpc", "otlp-http"] | None = None
    #: Where to (None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else
    #: the exporter's default, localhost:4317 or :4318). ``http://`` for gRPC: no TLS.
    endpoint: str | None = None
    service_name: str = "inferd"


