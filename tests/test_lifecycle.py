"""Setup modes, shared setup, input adapters, authentication and configuration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import RunningServer, service_config
from workflows_for_tests import CountedSetup

from inferd import ConfigError, InternalError, InvalidInput, PermissionDenied, ResourceExhausted, Unauthenticated
from inferd.client import Client, JsonBytes
from inferd.config import ModelConfig, load_config
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc
from inferd.workflow import Blob


def test_concurrent_setup_calls_share_one_run(server: RunningServer) -> None:
    CountedSetup.release.clear()
    before = CountedSetup.setups
    results: list[float] = []
    errors: list[BaseException] = []

    def call_setup() -> None:
        try:
            with server.client(timeout=30) as client:
                results.append(client.setup("explicit"))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=call_setup) for _ in range(8)]
    for thread in threads:
        thread.start()
    with server.client() as client:
        for _ in range(200):  # wait until the setup is under way
            if next(m for m in client.models() if m.name == "explicit").state == "loading":
                break
            time.sleep(0.01)
    CountedSetup.release.set()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(results) == 8 and len(set(results)) == 1
    assert CountedSetup.setups == before + 1
    with server.client() as client:
        assert client.infer("explicit", "x").output == {"setups": before + 1}
        assert client.health("explicit") == "SERVING"


def test_lazy_model_is_set_up_by_its_first_request(client: Client) -> None:
    CountedSetup.release.set()
    lazy = next(m for m in client.models() if m.name == "lazy")
    assert lazy.state == "declared"
    result = client.infer("lazy", "x")
    assert "setup" in result.timings
    assert next(m for m in client.models() if m.name == "lazy").state == "ready"
    assert "setup" not in client.infer("lazy", "x").timings


def test_setup_of_an_undeclared_model_is_not_found(client: Client) -> None:
    from inferd import ModelNotFound

    with pytest.raises(ModelNotFound):
        client.setup("os:system")


def test_records_adapter_flattens_renames_and_selects(client: Client) -> None:
    records = [{"user": {"name": "ada", "age": 36, "city": "London"}, "extra": 1}]
    output = client.infer("records", records).output
    assert output["inputs"] == [{"name": "ada", "user.age": 36}]
    with pytest.raises(InvalidInput) as error:
        client.infer("records", [{"user": {"name": "x"}}])
    assert "record 0" in str(error.value) and "user.age" in str(error.value)


def test_records_adapter_reads_ndjson_and_deep_records(client: Client) -> None:
    ndjson = b'{"user": {"name": "ada", "age": 36}}\n\n{"user": {"name": "bo", "age": 7}}\n'
    assert client.infer("records", JsonBytes(ndjson)).output["inputs"] == [
        {"name": "ada", "user.age": 36},
        {"name": "bo", "user.age": 7},
    ]
    first, second = b'{"user": {"name": "ada", "age": 36}}', b'{"user": }'
    with pytest.raises(InvalidInput) as alone:
        client.infer("records", JsonBytes(second))
    with pytest.raises(InvalidInput) as error:
        client.infer("records", JsonBytes(first + b"\n" + second))
    offset = int(alone.value.details["offset"]) + len(first) + 1  # counted from the document's start
    assert str(error.value).startswith(f"malformed JSON at byte {offset}:")
    # Deeper than Python's recursion limit, within the JSON parser's: flattened, or refused
    # naming the record, never an internal error.
    deep = b'{"d": ' * 1000 + b"1" + b"}" * 1000  # built by hand: orjson writes 254 levels at most
    with pytest.raises(InvalidInput) as error:
        client.infer("records", JsonBytes(b'[{"user": {"name": "x", "age": 1}, "deep": %s}, {"user": {"name": "y"}}]' % deep))
    assert str(error.value) == 'record 1, field "user.age": missing'
    nested = b"[" * 1000 + b"]" * 1000
    with pytest.raises(InvalidInput) as error:
        client.infer("records", JsonBytes(b'[{"user": {"name": "x", "age": 1}}, %s]' % nested))
    assert str(error.value).startswith("record 1: expected an object, got list")


def test_passthrough_delivers_each_payload_kind(client: Client) -> None:
    assert client.infer("passthrough", {"a": [1, 2]}).output["inputs"] == {"a": [1, 2]}
    assert client.infer("passthrough", "some text").output["inputs"] == "some text"
    assert client.infer("passthrough", [[1.5]], parameters={"k": "v"}).output == {
        "inputs": [[1.5]],
        "parameters": {"k": "v"},
    }
    tensors = client.infer("passthrough", {"x": np.arange(6, dtype=np.int32).reshape(2, 3)}).output
    assert tensors["inputs"]["x"] == [[0, 1, 2], [3, 4, 5]]


def test_blob_round_trip(client: Client) -> None:
    with pytest.raises(InvalidInput) as error:
        client.infer("echo", Blob(b"\x00\x01", "application/octet-stream"))
    assert "expected text" in str(error.value)


def test_inline_stages_run_on_the_loop_and_plain_ones_in_threads(client: Client) -> None:
    ran = client.infer("threads", "x").output
    assert ran["preprocess"] == "inferd-test-server"  # the server's event loop thread
    assert ran["run"].startswith("inferd-stage")
    ran = client.infer("threads-inline", "x").output  # `inline = true`: no stage leaves the loop
    assert ran == {"preprocess": "inferd-test-server", "run": "inferd-test-server"}


def test_a_model_whose_stages_all_run_inline_is_served_in_one_go(server: RunningServer, client: Client) -> None:
    from workflows_for_tests import CountedInline

    from inferd.adapters import Payload
    from inferd.errors import DeadlineExceeded

    engine = server.server.engine
    result = client.infer("counted-inline", "x", parameters={"suffix": "!"})
    assert result.output["text"] == "x" and result.output["suffix"] == "!"
    assert list(result.timings) == ["adapt", "preprocess", "run", "postprocess", "total"]
    assert result.output["threads"] == ["inferd-test-server"] * 3  # every stage on the loop
    runs = CountedInline.runs
    # A request whose deadline has passed when it starts never runs.
    with pytest.raises(DeadlineExceeded):
        server.call(engine.infer("counted-inline", Payload("text", "late"), deadline=time.monotonic() - 1))
    assert CountedInline.runs == runs
    # A failing run fails its request alone, the next one is served, and nothing stays in flight.
    with pytest.raises(InternalError):
        client.infer("counted-inline", "fail")
    assert client.infer("counted-inline", "y").output["runs"] == runs + 2
    assert next(report for report in engine.describe() if report.name == "counted-inline").inflight == 0
    # Stage statistics count every stage of every request served.
    stages = next(m for m in client.models() if m.name == "counted-inline").stages
    assert {stage: stages[stage]["count"] for stage in ("adapt", "preprocess", "run", "postprocess", "total")} == {
        "adapt": 2, "preprocess": 2, "run": 2, "postprocess": 2, "total": 2,
    }  # fmt: skip


def test_eager_failure_keeps_the_server_up_and_health_not_serving() -> None:
    config = service_config()
    models = {
        "echo": config.models["echo"],
        "broken": ModelConfig.model_validate({"workflow": "workflows_for_tests:BrokenSetup", "setup": "eager"}),
    }
    running = RunningServer(config.model_copy(update={"models": models}))
    try:
        with running.client(timeout=30) as client:
            assert client.health() == "NOT_SERVING"
            assert client.health("echo") == "SERVING"
            assert client.health("broken") == "NOT_SERVING"
            assert client.infer("echo", "ok").output == "ok"
    finally:
        running.stop()


@pytest.fixture(scope="module")
def secured() -> Iterator[RunningServer]:
    config = service_config()
    auth = {"tokens": [{"name": "all", "token": "t-all"}, {"name": "echo-only", "token": "t-echo", "models": ["echo"]}]}
    config = config.with_server(auth=auth).model_copy(update={"models": {"echo": config.models["echo"], "wine": config.models["wine"]}})
    running = RunningServer(config)
    yield running
    running.stop()


def test_authentication(secured: RunningServer) -> None:
    with secured.client() as anonymous, pytest.raises(Unauthenticated) as error:
        anonymous.infer("echo", "x")
    assert error.value.details["status"] == "UNAUTHENTICATED"
    with secured.client(token="wrong") as wrong, pytest.raises(Unauthenticated):
        wrong.infer("echo", "x")
    with secured.client(token="t-echo") as limited:
        assert limited.infer("echo", "x").output == "x"
        with pytest.raises(PermissionDenied) as denied:
            limited.infer("wine", [{}])
        assert denied.value.details["status"] == "PERMISSION_DENIED" and "wine" in str(denied.value)
    with secured.client(token="t-all") as full:
        assert full.infer("echo", "y").output == "y"
    with grpc.insecure_channel(secured.address) as channel:  # the scheme's name in any case
        request = pb.InferRequest(model="echo", input=pb.Payload(text="z"))
        answer = pb_grpc.InferenceStub(channel).Infer(request, metadata=(("authorization", "bearer t-all"),), timeout=30)
        assert answer.output.text == "z"
    with secured.client() as anonymous:
        assert anonymous.health() == "SERVING"  # health stays open for probes


@pytest.mark.parametrize("method", ["Infer", "Stream", "Setup", "ListModels"])
@pytest.mark.parametrize("token, code", [(None, "UNAUTHENTICATED"), ("wrong", "UNAUTHENTICATED"), ("t-echo", "INVALID_ARGUMENT")])
def test_the_token_is_checked_before_the_request_is_read(
    secured: RunningServer, method: str, token: str | None, code: str
) -> None:
    """Bytes that are no request: a caller without a valid token learns only that; one with a
    token learns that its request is malformed."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(secured.address) as channel:
        if method == "Stream":
            call = channel.unary_stream(f"/inferd.v1.Inference/{method}")
        else:
            call = channel.unary_unary(f"/inferd.v1.Inference/{method}")
        with pytest.raises(grpc.RpcError) as error:
            answer = call(b"\x0a\xff\xff\xff\xff\x0f", metadata=metadata, timeout=30)
            if method == "Stream":
                list(answer)
    assert error.value.code().name == code  # type: ignore[attr-defined]


def test_every_token_is_tried_and_its_models_are_checked_after_reading() -> None:
    from inferd.config import AuthConfig
    from inferd.server.interceptors import Authenticator

    tokens = [{"name": f"t{i}", "token": f"secret-{i}", "models": [f"m{i}"]} for i in range(5)]
    authenticator = Authenticator(AuthConfig.model_validate({"tokens": tokens}))
    for i in range(5):
        identity = authenticator.identify((("authorization", f"Bearer secret-{i}"),))
        assert identity == (f"t{i}", frozenset({f"m{i}"}), None)  # (name, models, rate bucket)
        authenticator.permit(identity, f"m{i}")
        authenticator.permit(identity, f"m{i}/{i + 7}")  # a version of the model (inferd.versions)
        for other in (f"m{(i + 1) % 5}", f"m{(i + 1) % 5}/{i}", f"m{i}x/1", f"x/m{i}"):
            with pytest.raises(PermissionDenied):
                authenticator.permit(identity, other)
    for wrong in ("secret-", "secret-10", "", "secret-1 extra"):
        with pytest.raises(Unauthenticated):
            authenticator.identify((("authorization", f"Bearer {wrong}"),))


def test_config_refuses_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "inferd.toml"
    path.write_text('[models.m]\nworkflow = "echo"\nsetup = "eager"\nbatch_size = 3\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "models.m.batch_size" in str(error.value)
    path.write_text('[models."bad name"]\nworkflow = "echo"\n')
    with pytest.raises(ConfigError):
        load_config(path)
    path.write_text('[server]\naddress = "0.0.0.0:1"\n[models.m]\nworkflow = "echo"\n')
    assert load_config(path, environ={"INFERD_ADDRESS": "127.0.0.1:9"}).server.address == "127.0.0.1:9"
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={"INFERD_GRACE_S": "-1"})
    assert "grace_s" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "missing.toml")
    assert "not found" in str(error.value)


def test_max_message_size_is_enforced() -> None:
    config = service_config()
    config = config.with_server(max_message_bytes=4096).model_copy(update={"models": {"echo": config.models["echo"]}})
    running = RunningServer(config)
    try:
        with running.client(timeout=30) as client:
            assert client.infer("echo", "small").output == "small"
            with pytest.raises(ResourceExhausted) as error:
                client.infer("echo", "x" * 10_000)
            assert error.value.details["status"] == "RESOURCE_EXHAUSTED"
    finally:
        running.stop()
