"""The server's logs: ``log_format = "text"`` (one line a record, for people) or ``"json"``
(one JSON object a line, for log pipelines), and the optional access log.

The access log (``access_log = true``; logger ``inferd.access``) writes one line a call: time,
model, RPC, request id, status code, milliseconds. Never a payload, a parameter or a token.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from typing import Any

import orjson

from .config import ServiceConfig

__all__ = ["ACCESS_FIELDS", "JsonFormatter", "configure_logging"]

#: The access log's fields, in order (also the ``extra`` keys of its records).
ACCESS_FIELDS = ("model", "rpc", "id", "code", "ms", "trace_id")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC, ISO 8601), level, logger, message, the access
    log's fields where the record has them, the worker's pid, and the traceback if any."""

    def __init__(self, worker: bool = False) -> None:
        super().__init__()
        self._pid = os.getpid() if worker else None

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ACCESS_FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if self._pid is not None:
            line["worker"] = self._pid
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(config: ServiceConfig, *, worker: bool = False) -> None:
    """Sets up the root logger as ``[server]`` says (``log_level``, ``log_format``)."""
    handler = logging.StreamHandler()
    if config.server.log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        where = f" [worker {os.getpid()}]" if worker else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.server.log_level.upper())
