"""Server reflection, v1 and v1alpha, through the reflection stubs; and ghz, which needs it to
call a method without a .proto."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import grpc
import pytest
from conftest import ROOT, RunningServer
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as alpha

GHZ = ROOT / "benches" / ".bin" / "ghz"
VERSIONS = ["grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"]


def ask(server: RunningServer, service: str, **request: Any) -> alpha.ServerReflectionResponse:
    """One reflection request on ``service`` (v1 and v1alpha share their messages' layout)."""
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=alpha.ServerReflectionRequest.SerializeToString,
            response_deserializer=alpha.ServerReflectionResponse.FromString,
        )
        (response,) = list(call(iter([alpha.ServerReflectionRequest(**request)]), timeout=30))
    return response


def files(response: alpha.ServerReflectionResponse) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert response.HasField("file_descriptor_response"), response
    protos = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in response.file_descriptor_response.file_descriptor_proto]
    return {proto.name: proto for proto in protos}


@pytest.mark.parametrize("service", VERSIONS)
def test_reflection_lists_the_services(server: RunningServer, service: str) -> None:
    listed = {item.name for item in ask(server, service, list_services="").list_services_response.service}
    assert listed == {"inferd.v1.Inference", "inference.GRPCInferenceService", "grpc.health.v1.Health", *VERSIONS}


@pytest.mark.parametrize("service", VERSIONS)
@pytest.mark.parametrize("symbol", ["inferd.v1.Inference", "inferd.v1.Inference.Infer", "inferd.v1.Inference.Stream", "inferd.v1.InferRequest"])
def test_symbols_and_methods_resolve_to_their_file(server: RunningServer, service: str, symbol: str) -> None:
    found = files(ask(server, service, file_containing_symbol=symbol))
    proto = found["inferd/v1/inference.proto"]
    assert [method.name for method in proto.service[0].method] == ["Setup", "Infer", "Stream", "ListModels", "Load", "Unload"]
    assert "google/protobuf/struct.proto" in found  # with its dependencies


@pytest.mark.parametrize("service", VERSIONS)
def test_the_reflection_services_describe_themselves(server: RunningServer, service: str) -> None:
    found = files(ask(server, service, file_containing_symbol=service))
    (proto,) = found.values()
    assert f"{proto.package}.{proto.service[0].name}" == service


@pytest.mark.parametrize("service", VERSIONS)
@pytest.mark.parametrize("symbol", ["inferd.v1.Inference.Nope", "inferd.v1.Nope", "nope"])
def test_unknown_symbols_are_not_found(server: RunningServer, service: str, symbol: str) -> None:
    response = ask(server, service, file_containing_symbol=symbol)
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_ghz_calls_infer_through_reflection_alone(server: RunningServer) -> None:
    assert GHZ.exists(), f"{GHZ} is missing: 'make tools' builds it"
    run = subprocess.run(
        [str(GHZ), "--insecure", "--call", "inferd.v1.Inference/Infer", "-d", '{"model": "echo", "input": {"text": "hi"}}',
         "-n", "40", "-c", "4", "--format", "json", server.address],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["count"] == 40
    assert report["statusCodeDistribution"] == {"OK": 40}, report.get("errorDistribution")
