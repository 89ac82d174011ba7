"""The gRPC front: proto messages in and out, nothing else. The engine does the work."""

from __future__ import annotations

from typing import Any

__all__ = ["create_server", "serve", "serve_workers"]


def __getattr__(name: str) -> Any:
    # Lazy: the client imports server.convert and must not pull in the engine with it.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'inferd.server' has no attribute {name!r}")
