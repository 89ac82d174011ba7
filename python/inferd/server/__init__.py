"""The gRPC front: proto messages in and out, nothing else. The engine does the work."""

from .app import create_server, serve, serve_workers

__all__ = ["create_server", "serve", "serve_workers"]
