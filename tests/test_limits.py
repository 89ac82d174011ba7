"""Limits against abuse, through a real server and the Python client: JSON payloads' depth and
size, a model's own largest message, and a token's request rate (docs/configuration.md)."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import RunningServer, service_config
from google.rpc import error_details_pb2, status_pb2

from inferd import ConfigError, InvalidInput, MessageTooLarge, ResourceExhausted
from inferd.client import Client, JsonBytes
from inferd.config import AuthToken, ModelConfig, load_config
from inferd.v1 import inference_pb2 as pb
from inferd.server.limits import SharedRates, bucket_for
from inferd.v1 import inference_pb2_grpc as pb_grpc
from inferd.workflow import Workflow

from test_cli import _free_pair, start_serve, stop_serve

MODULE = "workflows_for_tests"
MiB = 1024 * 1024


class Kind(Workflow):
    """Answers with its input's type name (a model that echoes a 1000-deep input back fails
    in orjson's encoder, which writes 254 levels at most: the output's problem, not the input's)."""

    def run(self, features: Any) -> Any:
        return type(features).__name__


def _models() -> dict[str, ModelConfig]:
    tables: dict[str, dict[str, Any]] = {
        "passthrough": {"workflow": f"{MODULE}:Inputs"},
        "records": {"workflow": f"{MODULE}:Inputs", "input": {"format": "records", "flatten": True}},
        # The Rust records path: JSON records -> tensors by a schema.
        "tensor": {"workflow": f"{MODULE}:Inputs", "input": {"format": "tensor", "fields": ["a", "b.c"]}},
        "strict": {
            "workflow": f"{MODULE}:Inputs",
            "limits": {"max_json_depth": 4, "max_json_bytes": 200, "max_message_bytes": 1000},
        },
        "lenient": {"workflow": "test_limits:Kind", "limits": {"max_json_depth": 1024}},
        "lenient-tensor": {
            "workflow": "test_limits:Kind", "limits": {"max_json_depth": 1024},
            "input": {"format": "tensor", "fields": [".".join(["a"] * 130)]},
        },  # fmt: skip
        "big": {"workflow": f"{MODULE}:TensorEcho", "limits": {"max_message_bytes": 3 * MiB}},
        "tensor-echo": {"workflow": f"{MODULE}:TensorEcho"},
    }
    return {name: ModelConfig.model_validate(table) for name, table in tables.items()}


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningServer]:
    tokens = [
        {"name": "all", "token": "t-all"},
        {"name": "metered", "token": "t-metered", "rate": 0.001, "burst": 3},
    ]
    config = service_config().model_copy(update={"models": _models()})
    running = RunningServer(config.with_server(max_message_bytes=MiB, auth={"tokens": tokens}))
    yield running
    running.stop()


@pytest.fixture
def client(limited: RunningServer) -> Iterator[Client]:
    with limited.client(token="t-all", timeout=60) as client:
        yield client


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_depth_is_refused_naming_the_limit_on_every_adapter(client: Client) -> None:
    assert client.infer("passthrough", JsonBytes(nested(64))).output["inputs"] is not None
    for model in ("passthrough", "records", "tensor"):
        with pytest.raises(InvalidInput) as error:
            client.infer(model, JsonBytes(nested(65)))
        assert str(error.value) == (
            f"model {model!r}: the JSON payload nests deeper than 64 levels at byte 64 (limits.max_json_depth)"
        )
        assert error.value.details["limit"] == "max_json_depth" and error.value.details["offset"] == 64
    # Deep inside a record, in a field no schema reads: refused all the same, at its bracket.
    deep = b'[{"a": 1, "b": {"c": 2}, "x": %s}]' % nested(100)
    with pytest.raises(InvalidInput, match=r"deeper than 64 levels at byte 92 "):
        client.infer("tensor", JsonBytes(deep))
    # Brackets in strings do not count; a record with thousands of objects is not deep.
    text = b'[{"a": 1, "b": {"c": 2}, "s": "%s"}]' % (b"[{" * 500)
    assert client.infer("tensor", JsonBytes(text)).output["inputs"]["input"] == [[1.0, 2.0]]
    many = b"[" + b",".join(b'{"a": %d, "b": {"c": 0}}' % i for i in range(2000)) + b"]"
    assert len(client.infer("tensor", JsonBytes(many)).output["inputs"]["input"]) == 2000


def test_a_models_own_json_limits(client: Client) -> None:
    with pytest.raises(InvalidInput, match=r"^model 'strict': the JSON payload nests deeper than 4 levels"):
        client.infer("strict", JsonBytes(b'{"a": {"b": {"c": {"d": {}}}}}'))
    assert client.infer("strict", JsonBytes(b'{"a": {"b": {"c": {"d": 1}}}}')).output["inputs"]["a"]["b"]
    with pytest.raises(InvalidInput) as error:
        client.infer("strict", JsonBytes(b'"' + b"x" * 300 + b'"'))
    assert str(error.value) == (
        "model 'strict': the JSON payload is 302 bytes, over the limit of 200 (limits.max_json_bytes)"
    )
    assert error.value.details["max_json_bytes"] == 200
    # Up to orjson's own ceiling (1024) where a model allows it; beyond, the limit's message,
    # never the parser's.
    assert client.infer("lenient", JsonBytes(nested(1024))).output == "list"
    with pytest.raises(InvalidInput, match=r"deeper than 1024 levels at byte 1024 \(limits.max_json_depth\)"):
        client.infer("lenient", JsonBytes(nested(1025)))
    # The Rust records path counts the depth as it reads, in the fields it reads (here 130
    # levels) and in what it skips, with the model's limit.
    path = b'{"a": ' * 130 + b"1" + b"}" * 130
    assert client.infer("lenient-tensor", JsonBytes(path)).output == "dict"
    with pytest.raises(InvalidInput, match=r"^model 'lenient-tensor': .* deeper than 1024 levels at byte 1024 "):
        client.infer("lenient-tensor", JsonBytes(nested(1025)))
    with pytest.raises(InvalidInput, match=r"deeper than 1024 levels at byte 1029 "):
        client.infer("lenient-tensor", JsonBytes(b'{"b": ' + nested(1024) + b"}"))


def test_max_message_bytes_per_model(client: Client) -> None:
    two_mib = {"x": np.zeros(2 * MiB // 4, dtype=np.float32)}
    out = client.infer("big", two_mib).output
    assert out["x"].shape == two_mib["x"].shape  # over the server's 1 MiB, within big's 3 MiB
    with pytest.raises(MessageTooLarge) as error:
        client.infer("tensor-echo", two_mib)
    assert error.value.code == "RESOURCE_EXHAUSTED" and str(error.value).endswith(
        "the request is 2097197 bytes, over the server's limit of 1048576 (max_message_bytes)"
    )
    with pytest.raises(MessageTooLarge) as error:
        client.infer("strict", JsonBytes(b'"' + b"x" * 2000 + b'"'))
    assert str(error.value).startswith("model 'strict': the request is ")
    assert str(error.value).endswith(" bytes, over its limit of 1000 (limits.max_message_bytes)")
    assert error.value.details["max_message_bytes"] == 1000 and error.value.details["model"] == "strict"
    # Over the largest model's limit, gRPC's own refusal (before any model is known): the same
    # status, no retry hint worth following.
    with pytest.raises(ResourceExhausted, match="Received message larger than max"):
        client.infer("big", {"x": np.zeros(4 * MiB // 4, dtype=np.float32)})
    with pytest.raises(MessageTooLarge, match=r"^model 'strict': the request is \d+ bytes, over its limit of 1000 "):
        client.infer("strict", "x" * 2000)  # text: no JSON, the message's own limit
    assert client.infer("strict", "x" * 100).output["inputs"] == "x" * 100


def test_a_tokens_rate_answers_resource_exhausted_with_a_retry_hint(limited: RunningServer) -> None:
    rate, burst = 0.001, 3  # the "metered" token's
    with limited.client(token="t-metered") as metered:
        started = time.monotonic()
        for _ in range(burst):
            assert metered.infer("passthrough", "x").output["inputs"] == "x"
        with pytest.raises(ResourceExhausted) as error:
            metered.infer("passthrough", "x")
        elapsed = time.monotonic() - started
        assert "token 'metered' is over its rate of 0.001 requests a second (burst 3)" in str(error.value)
        # The hint is the time until the next token: a whole one's 1/rate, less what refilled
        # since the first call took from the full bucket (at most the time measured around them).
        one_token_ms = 1000 / rate
        assert one_token_ms - elapsed * 1000 - 1 <= error.value.retry_after_ms <= math.ceil(one_token_ms)
    with limited.client(token="t-all") as other:  # other tokens are not slowed
        assert other.infer("passthrough", "y").output["inputs"] == "y"
    # The status carries a google.rpc.RetryInfo, as every RESOURCE_EXHAUSTED with a hint does.
    with grpc.insecure_channel(limited.address) as channel:
        stub = pb_grpc.InferenceStub(channel)
        with pytest.raises(grpc.RpcError) as raw:
            stub.Infer(pb.InferRequest(model="passthrough", input=pb.Payload(text="x")), metadata=[("authorization", "Bearer t-metered")])
    assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(raw.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.ToMilliseconds() == int(trailers["retry-after-ms"]) > 0


def test_the_default_burst_is_one_seconds_worth() -> None:
    assert bucket_for(AuthToken(name="n", token="t", rate=2.5)).burst == 3  # type: ignore[union-attr]
    assert bucket_for(AuthToken(name="n", token="t", rate=0.2)).burst == 1  # type: ignore[union-attr]
    assert bucket_for(AuthToken(name="n", token="t")) is None


def test_a_shared_table_is_one_bucket_a_token_wherever_it_is_mapped() -> None:
    """What each worker of ``--workers`` does: it unpickles the parent's table (a path), maps
    the same slots and takes from the same buckets; other tokens keep their own."""
    tokens = [AuthToken(name="free", token="f"), AuthToken(name="n", token="t", rate=0.001, burst=2),
              AuthToken(name="m", token="u", rate=0.001, burst=1)]  # fmt: skip
    table = SharedRates.create(tokens)
    other = pickle.loads(pickle.dumps(table))
    try:
        assert other.path == table.path and other.slots == 3
        mine, theirs = bucket_for(tokens[1], (table, 1)), bucket_for(tokens[1], (other, 1))
        assert mine is not None and theirs is not None and bucket_for(tokens[0], (table, 0)) is None
        mine.take()
        theirs.take()  # the burst of 2, taken once in each mapping
        for bucket in (mine, theirs):
            with pytest.raises(ResourceExhausted, match=r"token 'n' is over its rate of 0.001 requests a second"):
                bucket.take()
        third = bucket_for(tokens[2], (other, 2))
        assert third is not None
        third.take()  # "m"'s bucket is its own, still full
    finally:
        other.close()
        table.unlink()
    assert not Path(table.path).exists()


def test_limits_are_validated(tmp_path: Any) -> None:
    file = tmp_path / "inferd.toml"
    file.write_text('[server]\nmax_json_depth = 5000\n')
    with pytest.raises(ConfigError, match=r"max_json_depth: Input should be less than or equal to 1024"):
        load_config(file)
    file.write_text('[[server.auth.tokens]]\nname = "a"\ntoken = "t"\nburst = 4\n')
    with pytest.raises(ConfigError, match="burst goes with rate"):
        load_config(file)


def test_the_json_limits_environment_overrides(tmp_path: Any) -> None:
    file = tmp_path / "inferd.toml"
    file.write_text('[server]\nmax_json_depth = 8\n')
    server = load_config(file, environ={"INFERD_MAX_JSON_DEPTH": "32", "INFERD_MAX_JSON_BYTES": "4096"}).server
    assert (server.max_json_depth, server.max_json_bytes) == (32, 4096)
    unset = load_config(file, environ={}).server
    assert (unset.max_json_depth, unset.max_json_bytes) == (8, None)
    # A bad value names the variable and what it holds, beside the key and the reason.
    for variable, value, key, reason in [
        ("INFERD_MAX_JSON_DEPTH", "deep", "max_json_depth", "Input should be a valid integer"),
        ("INFERD_MAX_JSON_DEPTH", "2000", "max_json_depth", "Input should be less than or equal to 1024"),
        ("INFERD_MAX_JSON_BYTES", "0", "max_json_bytes", "Input should be greater than 0"),
        ("INFERD_MAX_MESSAGE_BYTES", "1.5", "max_message_bytes", "Input should be a valid integer"),
        ("INFERD_METRICS_ENABLED", "maybe", "metrics.enabled", "Input should be a valid boolean"),  # a sub-table's
    ]:
        with pytest.raises(ConfigError) as error:
            load_config(file, environ={variable: value})
        assert f"server.{key}: {reason}" in str(error.value)
        assert str(error.value).endswith(f" (from the environment: {variable}={value!r})")


def test_the_open_inference_protocol_meets_the_same_limits(limited: RunningServer) -> None:
    from inferd.oip import grpc_service_pb2 as oip
    from inferd.oip import grpc_service_pb2_grpc as oip_grpc

    def request(model: str, array: np.ndarray) -> oip.ModelInferRequest:
        message = oip.ModelInferRequest(model_name=model)
        message.inputs.add(name="x", datatype="FP32", shape=array.shape)
        message.raw_input_contents.append(array.tobytes())
        return message

    with grpc.insecure_channel(limited.address) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        token = [("authorization", "Bearer t-all")]
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request("strict", np.zeros(1000, np.float32)), metadata=token, timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.value.details().startswith("model 'strict': the request is ")
        answer = stub.ModelInfer(request("big", np.zeros(2 * MiB // 4, np.float32)), metadata=token, timeout=30)
        assert answer.model_name == "big"
        # In a bidirectional stream, a refused request is answered in the stream, which goes on.
        small = request("tensor-echo", np.ones(4, np.float32))
        answers = list(stub.ModelStreamInfer(iter([request("strict", np.zeros(1000, np.float32)), small]),
                                             metadata=token, timeout=30))  # fmt: skip
        assert "over its limit of 1000" in answers[0].error_message and not answers[1].error_message


def test_max_message_bytes_without_authentication() -> None:
    # Without [server.auth], gRPC runs the deserializer itself: the limit is checked there.
    config = service_config().model_copy(update={"models": {"strict": _models()["strict"]}})
    running = RunningServer(config)
    try:
        with running.client() as client:
            with pytest.raises(MessageTooLarge, match=r"^model 'strict': the request is \d+ bytes, over its limit"):
                client.infer("strict", "x" * 2000)
            assert client.infer("strict", "x").output["inputs"] == "x"
    finally:
        running.stop()


def test_a_tokens_rate_is_the_servers_shared_by_its_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``--workers 2`` both processes take from one bucket: a token gets its rate, not
    twice it, however the kernel spreads its connections."""
    rate, burst = 0.05, 5
    metrics = _free_pair()  # each worker's metrics port answers once its gRPC server listens
    monkeypatch.setenv("INFERD_METRICS_ADDRESS", f"127.0.0.1:{metrics}")
    config = (
        '[server]\nlog_format = "json"\naccess_log = true\n'
        f'[[server.auth.tokens]]\nname = "metered"\ntoken = "t-metered"\nrate = {rate}\nburst = {burst}\n'
        '[models.echo]\nworkflow = "echo"\n'
    )
    process, address = start_serve(tmp_path, config, "--workers", "2")

    def listening(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5):
                return True
        except OSError:
            return False

    try:
        for _ in range(600):
            if listening(metrics) and listening(metrics + 1):
                break
            threading.Event().wait(0.05)  # a worker still starting: poll again
        assert listening(metrics) and listening(metrics + 1), "a worker never started"
        hints: list[int | None] = []  # None: answered
        started = time.monotonic()
        for _ in range(40):
            with Client(address, token="t-metered", timeout=30) as client:  # a connection each
                try:
                    client.models()
                    hints.append(None)
                except ResourceExhausted as error:
                    hints.append(error.retry_after_ms)
        elapsed = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        output = stop_serve(process)
    calls = [json.loads(line) for line in output.splitlines() if '"logger":"inferd.access"' in line]
    by_worker = {call["worker"] for call in calls if call["rpc"] == "ListModels"}
    assert len(by_worker) == 2, f"the calls all reached one worker: {by_worker}"
    answered = hints.count(None)
    # Per process, each worker would answer its own burst (2 x 5); shared, the server's one.
    assert burst <= answered <= burst + rate * elapsed + 1, (answered, elapsed)
    assert answered == sum(1 for call in calls if call["rpc"] == "ListModels" and call["code"] == "OK")
    refused = [hint for hint in hints if hint is not None]
    assert len(refused) == len(hints) - answered
    assert all(0 < hint <= math.ceil(1000 / rate) for hint in refused)


def test_a_table_left_by_a_killed_server_is_removed_by_the_next() -> None:
    """A parent killed by SIGKILL cannot remove its table; the next table made on the machine
    removes those whose server is gone, and leaves a running server's alone."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    token = AuthToken(name="n", token="t", rate=1.0)
    first = SharedRates.create([token])
    first.unlink()
    folder = Path(first.path).parent  # where tables go (/dev/shm here)
    orphan = folder / f"inferd-rates-{int(gone.stdout)}-test"
    alive = folder / f"inferd-rates-{os.getppid()}-test"
    orphan.write_bytes(b"")
    alive.write_bytes(b"")
    table = SharedRates.create([token])
    try:
        assert not orphan.exists()
        assert alive.exists()
        assert Path(table.path).name.startswith(f"inferd-rates-{os.getpid()}-")
    finally:
        table.unlink()
        alive.unlink()
