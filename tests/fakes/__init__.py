"""Fake remote APIs for the remote workflows' tests: real HTTP on 127.0.0.1, port 0.

Each fake speaks its API's real wire format (JSON bodies, Server-Sent Events for streams),
counts the requests it gets, and can be told to fail the next requests with a given status.
"""

from .apis import FakeHFInference, FakeOpenAI, FakeTGI
from .server import FakeServer, Recorded, Reply

__all__ = ["FakeHFInference", "FakeOpenAI", "FakeServer", "FakeTGI", "Recorded", "Reply"]
