"""inferd: a gRPC model-serving microservice with a Rust records core.

Subclass :class:`Workflow` to serve a model; run ``inferd serve`` to serve a configuration;
call it with :class:`Client` or :class:`AsyncClient`.
"""

from .config import ServiceConfig, load_config
from .errors import (
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    InferdError,
    InternalError,
    InvalidInput,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    PermissionDenied,
    RecordError,
    ResourceExhausted,
    TensorError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .workflow import Audio, Blob, TensorSpec, Workflow, inline, request_cancelled

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AsyncClient",
    "Blob",
    "Cancelled",
    "Client",
    "ConfigError",
    "DeadlineExceeded",
    "InferdError",
    "InternalError",
    "InvalidInput",
    "ModelFailed",
    "ModelNotFound",
    "ModelNotReady",
    "PermissionDenied",
    "RecordError",
    "ResourceExhausted",
    "ServiceConfig",
    "TensorError",
    "TensorSpec",
    "TLS",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Workflow",
    "inline",
    "load_config",
    "request_cancelled",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The clients import grpc; a model's own code (Workflow, errors) should not pay for that.
    if name in ("Client", "AsyncClient", "TLS"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'inferd' has no attribute {name!r}")
