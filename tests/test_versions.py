"""Model versions ([models.NAME.versions.N] and version_policy): which versions a policy
serves, checked over generated version sets; and a real server that serves two versions of a
model through inferd.v1 (the Python client) and the Open Inference Protocol (its stubs):
a request without a version gets the latest ready one, a version can be named, unloaded and
loaded back, and an unserved version is NOT_FOUND naming the served ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import RunningServer
from hypothesis import given
from hypothesis import strategies as st

from inferd.config import ServiceConfig
from inferd.errors import ConfigError, ModelNotFound, ModelNotReady
from inferd.oip import grpc_service_pb2 as pb
from inferd.oip import grpc_service_pb2_grpc as pb_grpc
from inferd.versions import VersionPolicy

VERSIONED = "workflows_for_tests:Versioned"


def versioned(versions: list[int], policy: dict[str, Any] | None = None, **others: Any) -> ServiceConfig:
    table: dict[str, Any] = {
        "workflow": VERSIONED, "options": {"version": "base", "other": 1},
        "versions": {str(v): {"options": {"version": str(v)}} for v in versions},
    }  # fmt: skip
    if policy is not None:
        table["version_policy"] = policy
    return ServiceConfig.model_validate({"models": {"m": table, "plain": {"workflow": "echo"}, **others}})


@given(st.sets(st.integers(0, 10_000), min_size=1, max_size=12), st.data())
def test_a_policy_serves_what_it_says(versions: set[int], data: st.DataObject) -> None:
    ordered = sorted(versions)
    kind = data.draw(st.sampled_from(["latest", "all", "specific", "default"]))
    if kind == "latest":
        n = data.draw(st.integers(1, 15))
        policy, expected = {"latest": n}, ordered[-n:]
    elif kind == "all":
        policy, expected = {"all": True}, ordered
    elif kind == "specific":
        chosen = data.draw(st.sets(st.sampled_from(ordered), min_size=1))
        policy, expected = {"specific": sorted(chosen, reverse=True)}, sorted(chosen)
    else:
        policy, expected = None, ordered[-1:]
    # Any order of the tables: TOML keeps the file's order, which says nothing of versions.
    shuffled = data.draw(st.permutations(ordered))
    config = versioned(shuffled, policy)
    assert config.versions == {"m": [f"m/{v}" for v in expected]}
    assert list(config.models) == [*(f"m/{v}" for v in expected), "plain"]
    for v in expected:  # each version's table over the model's own: options merge key by key
        assert config.models[f"m/{v}"].options == {"version": str(v), "other": 1}
        assert config.models[f"m/{v}"].versions == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"versions": {"01": {}}}, "version '01': a version is a non-negative integer"),
        ({"versions": {"one": {}}}, "version 'one': a version is a non-negative integer"),
        ({"version_policy": {"all": True}}, "version_policy needs versions"),
        ({"versions": {"1": {}}, "version_policy": {"specific": [1, 7]}}, "does not have: 7 (versions: 1)"),
        ({"versions": {"1": {}}, "version_policy": {"latest": 1, "all": True}}, "one of { latest = n }"),
        ({"versions": {"1": {}}, "version_policy": {"latest": 0}}, "greater than or equal to 1"),
        ({"versions": {"1": {"version_policy": {"all": True}}}}, "version '1': version_policy belong to the model"),
        # A version the policy leaves out is checked too: a typo must not wait for a policy change.
        ({"versions": {"1": {"limits": {"max_concurrency": 0}}, "2": {}}}, "model 'm' version '1': limits.max_concurrency"),
        ({"versions": {"1": {"setupp": "lazy"}}}, "model 'm' version '1': setupp: Extra inputs"),
    ],
)
def test_bad_versions_are_configuration_errors(table: dict[str, Any], message: str, tmp_path: Any) -> None:
    from inferd.config import load_config

    path = tmp_path / "inferd.toml"
    path.write_text(_toml({"models": {"m": {"workflow": "echo", **table}}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_a_graph_has_no_versions() -> None:
    with pytest.raises(ValueError, match="a graph has no versions"):
        ServiceConfig.model_validate({"models": {"g": {
            "workflow": "graph", "output": "n", "nodes": {"n": {"model": "x", "inputs": ["request"]}},
            "versions": {"1": {}},
        }}})  # fmt: skip


def test_the_policy_object() -> None:
    assert VersionPolicy(latest=2).served(["10", "9", "1"]) == ["9", "10"]
    assert VersionPolicy(specific=[3, 1]).served(["1", "2", "3"]) == ["1", "3"]


def _toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the tests' tables (JSON's literals are TOML's inline tables' too)."""
    lines = []
    for name, table in data["models"].items():
        lines.append(f'[models."{name}"]')
        lines += [f"{key} = {_inline(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_inline(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value)


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[RunningServer]:
    # A graph whose node names the model without a version calls its latest ready version.
    graph = {"workflow": "graph", "output": "call", "nodes": {"call": {"model": "m", "input": "request"}}}
    config = versioned([1, 2, 3], {"specific": [1, 2]}, g=graph).with_server(metrics={"address": "127.0.0.1:0"})
    server = RunningServer(config)
    yield server
    server.stop()


@pytest.fixture
def stub(running: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(running.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def oip_infer(stub: pb_grpc.GRPCInferenceServiceStub, version: str = "") -> pb.ModelInferResponse:
    request = pb.ModelInferRequest(model_name="m", model_version=version, id="r1")
    request.inputs.add(name="input", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b'{"x": 1}')
    response: pb.ModelInferResponse = stub.ModelInfer(request, timeout=30)
    return response


def oip_answer(response: pb.ModelInferResponse) -> Any:
    raw = response.raw_output_contents[0]
    return json.loads(raw[4:])  # one BYTES element: its 4-byte length, then the JSON


def test_both_apis_serve_each_version(running: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with running.client() as client:
        names = [info.name for info in client.models()]
        assert names == ["m/1", "m/2", "plain", "g"]  # version 3 is declared, not served by the policy
        assert client.infer("m", {"x": 1}).output == {"version": "2", "echo": {"x": 1}}
        assert client.infer("g", {"x": 1}).output == {"version": "2", "echo": {"x": 1}}
        assert client.infer("m/1", {"x": 1}).output == {"version": "1", "echo": {"x": 1}}
        with pytest.raises(ModelNotFound, match=r"model 'm' has no served version '3' \(versions: 1, 2\)"):
            client.infer("m/3", {"x": 1})
        assert client.health("m") == client.health("m/1") == "SERVING"
    latest = oip_infer(stub)
    assert (latest.model_name, latest.model_version, latest.id) == ("m", "2", "r1")
    assert oip_answer(latest) == {"version": "2", "echo": {"x": 1}}
    first = oip_infer(stub, "1")
    assert first.model_version == "1" and oip_answer(first)["version"] == "1"
    with pytest.raises(grpc.RpcError) as caught:
        oip_infer(stub, "3")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND and "versions: 1, 2" in (caught.value.details() or "")
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="m"), timeout=30)
    assert (metadata.name, list(metadata.versions)) == ("m", ["1", "2"])
    assert stub.ModelReady(pb.ModelReadyRequest(name="m", version="1"), timeout=30).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="m", version="3"), timeout=30).ready
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=30)
    assert [(m.name, m.version, m.state) for m in index.models] == [("m", "1", "READY"), ("m", "2", "READY"), ("plain", "1", "READY"), ("g", "1", "READY")]
    statistics = stub.ModelStatistics(pb.ModelStatisticsRequest(name="m"), timeout=30)
    assert [(s.name, s.version) for s in statistics.model_stats] == [("m", "1"), ("m", "2")]
    assert all(s.inference_count >= 1 for s in statistics.model_stats)
    config = stub.ModelConfig(pb.ModelConfigRequest(name="m", version="1"), timeout=30)
    assert config.config.name == "m"
    # A model without versions is version "1", and only that.
    assert stub.ModelReady(pb.ModelReadyRequest(name="plain", version="1"), timeout=30).ready
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="plain", version="2"), timeout=30)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_unloading_the_latest_moves_requests_to_the_one_before(running: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with running.client() as client:
        try:
            client.unload("m/2")
            assert client.infer("m", {"x": 2}).output["version"] == "1"
            assert client.infer("g", {"x": 2}).output["version"] == "1"
            response = oip_infer(stub)
            assert response.model_version == "1" and oip_answer(response)["version"] == "1"
            with pytest.raises(ModelNotReady, match="'m/2' is unloaded"):
                client.infer("m/2", {"x": 2})
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"), timeout=60)  # every version
            assert client.infer("m", {"x": 3}).output["version"] == "2"
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="m"), timeout=60)
            states = {info.name: info.state for info in client.models()}
            assert states["m/1"] == states["m/2"] == "declared"
            with pytest.raises(ModelNotReady, match="unloaded"):
                client.infer("m", {"x": 4})
            assert client.health("m") == "NOT_SERVING"
        finally:
            client.load("m")
        assert client.infer("m", {"x": 5}).output["version"] == "2"
        assert client.health("m") == "SERVING"
