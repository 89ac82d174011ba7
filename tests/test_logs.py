"""The server's logs as `inferd serve` writes them: JSON lines, and the access log."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_cli import start_serve, stop_serve, wait_for_echo

from inferd import Client, ModelNotFound, Unauthenticated

CONFIG = """
[server]
log_format = "json"
access_log = true
[server.auth]
tokens = [{ name = "t", token = "the-secret-token" }]
[models.echo]
workflow = "echo"
"""


def test_json_logs_and_the_access_log(tmp_path: Path) -> None:
    process, address = start_serve(tmp_path, CONFIG)
    try:
        with Client(address, timeout=60, token="the-secret-token") as client:
            wait_for_echo(client)
            assert client.infer("echo", "a private payload", id="request-7").output == "a private payload"
            with pytest.raises(ModelNotFound):
                client.infer("nope", "x", id="request-8")
        with Client(address, timeout=60, token="wrong") as stranger, pytest.raises(Unauthenticated):
            stranger.infer("echo", "x")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        output = stop_serve(process)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    access = [line for line in lines if line["logger"] == "inferd.access"]
    by_id = {line["id"]: line for line in access}
    assert by_id["request-7"]["model"] == "echo" and by_id["request-7"]["code"] == "OK"
    assert by_id["request-7"]["rpc"] == "Infer" and by_id["request-7"]["ms"] > 0
    assert by_id["request-8"]["code"] == "NOT_FOUND" and by_id["request-8"]["model"] == "nope"  # as asked
    assert any(line["code"] == "UNAUTHENTICATED" for line in access)
    assert "a private payload" not in output and "the-secret-token" not in output and "wrong" not in output
