"""inferd: a gRPC model-serving microservice with a Rust records core.

Subclass :class:`Workflow` to serve a model; run ``inferd serve`` to serve a configuration;
call it with :class:`Client` or :class:`AsyncClient`.
"""

from .client import TLS, AsyncClient, Client
from .errors import (
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    InferdError,
    InternalError,
    InvalidInput,
    MessageTooLarge,
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
    "MessageTooLarge",
    "ModelFailed",
    "ModelNotFound",
    "ModelNotReady",
    "PermissionDenied",
    "RecordError",
    "ResourceExhausted",
    "TensorError",
    "TensorSpec",
    "TLS",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Workflow",
    "inline",
    "request_cancelled",
    "__version__",
]

