"""Mutated protobuf requests, sent as raw bytes to every RPC of inferd.v1 and of the Open
Inference Protocol on a live server: none may end INTERNAL or UNKNOWN (a client's mistake is a
status that names it), and the server still answers a valid request at the end.

Two sources of requests:

- bytes-level mutations of valid serialized requests (bits flipped, bytes inserted, deleted,
  duplicated, truncated, spliced from another request), ``INFERD_LIVE_FUZZ_REQUESTS`` of them
  from a seeded generator (``INFERD_LIVE_FUZZ_SEED``; the seed is printed);
- hypothesis-built messages of each RPC's request type, every field drawn from its descriptor.

Requests go through ``grpc.Channel.unary_unary`` (and ``unary_stream``, ``stream_stream``) with
identity serializers, so what is sent is exactly the bytes made here.
"""

from __future__ import annotations

import os
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from conftest import RunningServer, service_config
from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferd.config import ModelConfig
from inferd.oip import grpc_service_pb2 as oip
from inferd.v1 import inference_pb2 as pb

REQUESTS = int(os.environ.get("INFERD_LIVE_FUZZ_REQUESTS", "1000"))
SEED = int(os.environ.get("INFERD_LIVE_FUZZ_SEED", str(random.randrange(2**32))))
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
#: Models that Unload must never take away in the middle of the fuzz (the final check uses them).
KEPT = {"wine", "digits", "echo", "tensor-echo"}
TIMEOUT_S = 30

V1 = "/inferd.v1.Inference/"
OIP = "/inference.GRPCInferenceService/"
WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


def _v1_infer(model: str, payload: pb.Payload) -> pb.InferRequest:
    return pb.InferRequest(model=model, id="fuzz", input=payload)


def _tensor(name: str, shape: list[int], values: list[float]) -> pb.Payload:
    data = struct.pack(f"<{len(values)}f", *values)
    return pb.Payload(tensors=pb.Tensors(tensors=[pb.Tensor(name=name, dtype=pb.DATA_TYPE_FLOAT32, shape=shape, data=data)]))


def _oip_infer(model: str, name: str, datatype: str, shape: list[int], raw: bytes) -> oip.ModelInferRequest:
    request = oip.ModelInferRequest(model_name=model, id="fuzz")
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return request


def _bytes_tensor(text: bytes) -> bytes:
    return struct.pack("<I", len(text)) + text


# method -> (kind, request type, valid requests to mutate). kind: unary, stream (server
# streaming), bidi (ModelStreamInfer).
METHODS: dict[str, tuple[str, type[pb_message.Message], list[pb_message.Message]]] = {
    V1 + "Setup": ("unary", pb.SetupRequest, [pb.SetupRequest(model="echo")]),
    V1 + "Infer": ("unary", pb.InferRequest, [
        _v1_infer("echo", pb.Payload(text="a b c")),
        _v1_infer("wine", pb.Payload(json=b'[{"alcohol": 13.2, "malic_acid": 1.78}]')),
        _v1_infer("digits", _tensor("input", [1, 1, 8, 8], [0.5] * 64)),
        _v1_infer("tensor-echo", _tensor("x", [2, 2], [1.0, 2.0, 3.0, 4.0])),
    ]),
    V1 + "Stream": ("stream", pb.InferRequest, [_v1_infer("echo", pb.Payload(text="one two three"))]),
    V1 + "ListModels": ("unary", pb.ListModelsRequest, [pb.ListModelsRequest()]),
    V1 + "Load": ("unary", pb.LoadRequest, [pb.LoadRequest(model="unloadable")]),
    V1 + "Unload": ("unary", pb.UnloadRequest, [pb.UnloadRequest(model="unloadable")]),
    OIP + "ServerLive": ("unary", oip.ServerLiveRequest, [oip.ServerLiveRequest()]),
    OIP + "ServerReady": ("unary", oip.ServerReadyRequest, [oip.ServerReadyRequest()]),
    OIP + "ModelReady": ("unary", oip.ModelReadyRequest, [oip.ModelReadyRequest(name="wine", version="1")]),
    OIP + "ServerMetadata": ("unary", oip.ServerMetadataRequest, [oip.ServerMetadataRequest()]),
    OIP + "ModelMetadata": ("unary", oip.ModelMetadataRequest, [oip.ModelMetadataRequest(name="digits")]),
    OIP + "ModelInfer": ("unary", oip.ModelInferRequest, [
        _oip_infer("wine", "input", "FP32", [1, 13], struct.pack("<13f", *WINE)),
        _oip_infer("digits", "input", "FP32", [1, 1, 8, 8], bytes(256)),
        _oip_infer("echo", "text", "BYTES", [1], _bytes_tensor(b"a b")),
    ]),
    OIP + "ModelStreamInfer": ("bidi", oip.ModelInferRequest, [
        _oip_infer("echo", "text", "BYTES", [1], _bytes_tensor(b"a b c")),
        _oip_infer("wine", "input", "FP32", [1, 13], struct.pack("<13f", *WINE)),
    ]),
    OIP + "ModelConfig": ("unary", oip.ModelConfigRequest, [oip.ModelConfigRequest(name="wine")]),
    OIP + "ModelStatistics": ("unary", oip.ModelStatisticsRequest, [oip.ModelStatisticsRequest(name="echo")]),
    OIP + "RepositoryIndex": ("unary", oip.RepositoryIndexRequest, [oip.RepositoryIndexRequest(ready=True)]),
    OIP + "RepositoryModelLoad": ("unary", oip.RepositoryModelLoadRequest, [oip.RepositoryModelLoadRequest(model_name="unloadable")]),
    OIP + "RepositoryModelUnload": ("unary", oip.RepositoryModelUnloadRequest, [oip.RepositoryModelUnloadRequest(model_name="unloadable")]),
    OIP + "SystemSharedMemoryStatus": ("unary", oip.SystemSharedMemoryStatusRequest, [oip.SystemSharedMemoryStatusRequest(name="r")]),
    OIP + "SystemSharedMemoryRegister": ("unary", oip.SystemSharedMemoryRegisterRequest, [
        oip.SystemSharedMemoryRegisterRequest(name="r", key="/k", offset=0, byte_size=64)
    ]),
    OIP + "SystemSharedMemoryUnregister": ("unary", oip.SystemSharedMemoryUnregisterRequest, [oip.SystemSharedMemoryUnregisterRequest(name="r")]),
    OIP + "CudaSharedMemoryStatus": ("unary", oip.CudaSharedMemoryStatusRequest, [oip.CudaSharedMemoryStatusRequest(name="r")]),
    OIP + "CudaSharedMemoryRegister": ("unary", oip.CudaSharedMemoryRegisterRequest, [
        oip.CudaSharedMemoryRegisterRequest(name="r", raw_handle=b"\x00" * 8, device_id=0, byte_size=64)
    ]),
    OIP + "CudaSharedMemoryUnregister": ("unary", oip.CudaSharedMemoryUnregisterRequest, [oip.CudaSharedMemoryUnregisterRequest(name="r")]),
    OIP + "TraceSetting": ("unary", oip.TraceSettingRequest, [oip.TraceSettingRequest(model_name="wine")]),
    OIP + "LogSettings": ("unary", oip.LogSettingsRequest, [oip.LogSettingsRequest()]),
}


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RunningServer]:
    """A server of its own: Load and Unload are fuzzed too, which must not touch the shared one."""
    base = service_config()
    models = {name: base.models[name] for name in ("wine", "digits", "echo", "tensor-echo")}
    models["unloadable"] = ModelConfig.model_validate({"workflow": "workflows_for_tests:TensorEcho", "setup": "explicit"})
    running = RunningServer(base.model_copy(update={"models": models}))
    yield running
    running.stop()


def _mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        at = rng.randint(0, len(out))
        if choice == 0 and out:  # flip a bit
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
        elif choice == 1:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif choice == 2 and out:  # delete a range
            del out[at : at + rng.randint(1, 8)]
        elif choice == 3:  # truncate
            del out[at:]
        elif choice == 4 and out:  # duplicate a range
            end = min(len(out), at + rng.randint(1, 16))
            out[at:at] = out[at:end]
        elif choice == 5 and out:  # an interesting byte: a varint that never ends, a huge length
            out[rng.randrange(len(out))] = rng.choice([0x00, 0x7F, 0x80, 0xFF])
        elif choice == 6 and other:  # splice another request's bytes in
            start = rng.randrange(len(other))
            out[at:at] = other[start : start + rng.randint(1, 32)]
    return bytes(out)


def _guarded(method: str, data: bytes) -> bytes:
    """The request, unless it would unload a model the fuzz keeps (then an empty one)."""
    if not method.endswith("Unload"):
        return data
    request = METHODS[method][1]()
    try:
        request.ParseFromString(data)
    except pb_message.DecodeError:
        return data
    name = getattr(request, "model", None) or getattr(request, "model_name", "")
    return b"" if name in KEPT else data


def _call(channel: grpc.Channel, method: str, data: bytes) -> grpc.StatusCode:
    """Sends ``data`` as the request of ``method``, reading every response; its status."""
    kind = METHODS[method][0]
    identity: Callable[[bytes], bytes] = lambda raw: raw  # noqa: E731
    try:
        if kind == "unary":
            channel.unary_unary(method, request_serializer=identity, response_deserializer=identity)(data, timeout=TIMEOUT_S)
        elif kind == "stream":
            for _ in channel.unary_stream(method, request_serializer=identity, response_deserializer=identity)(data, timeout=TIMEOUT_S):
                pass
        else:
            # Each response of the stream carries its own error_message; the call's status is OK.
            call = channel.stream_stream(method, request_serializer=identity, response_deserializer=identity)
            for raw in call(iter([data, data]), timeout=TIMEOUT_S):
                response = oip.ModelStreamInferResponse.FromString(raw)
                assert "internal" not in response.error_message.lower(), (method, data.hex(), response.error_message)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
        assert code not in FORBIDDEN, f"{method} answered {code.name} ({error.details()}) to {data.hex()}"
        return code  # type: ignore[no-any-return]


def _still_serving(channel: grpc.Channel) -> None:
    infer = channel.unary_unary(V1 + "Infer", request_serializer=pb.InferRequest.SerializeToString,
                                response_deserializer=pb.InferResponse.FromString)  # fmt: skip
    reply = infer(_v1_infer("echo", pb.Payload(text="still here")), timeout=TIMEOUT_S)
    assert reply.output.text == "still here"
    wine = infer(_v1_infer("wine", _tensor("input", [1, 13], WINE)), timeout=TIMEOUT_S)
    assert wine.output.WhichOneof("kind") is not None


def test_mutated_bytes_to_every_rpc(fuzz_server: RunningServer) -> None:
    rng = random.Random(SEED)
    print(f"live fuzz: seed {SEED} (INFERD_LIVE_FUZZ_SEED), {REQUESTS} requests")
    seeds = [(method, request.SerializeToString()) for method, (_, _, requests) in METHODS.items() for request in requests]
    seen: Counter[str] = Counter()
    with grpc.insecure_channel(fuzz_server.address) as channel:
        for method, data in seeds:  # the valid ones first: none of those fails either
            seen[f"{method.rsplit('/', 1)[1]} {_call(channel, method, data).name}"] += 1
        for _ in range(REQUESTS):
            method, data = rng.choice(seeds)
            mutated = _guarded(method, _mutate(rng, data, rng.choice(seeds)[1]))
            seen[f"{method.rsplit('/', 1)[1]} {_call(channel, method, mutated).name}"] += 1
        _still_serving(channel)
    print(dict(sorted(seen.items())))


# -- hypothesis: messages of each request type, every field drawn from its descriptor ------

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_BYTES: st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\x00" * 52, b'[{"a": 1}]'])),
}
_NAMES = st.one_of(st.sampled_from(sorted(KEPT | {"unloadable", "", "no-such-model"})), st.text(max_size=12))


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _fields(field.message_type, depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-1, 40)  # known values and unknown ones
    if field.type == FieldDescriptor.TYPE_STRING:
        if field.name in ("model", "model_name", "name", "datatype"):
            return st.one_of(_NAMES, st.sampled_from(["FP32", "BYTES", "INT64", "FP16"]))
        return st.text(max_size=12)
    return _SCALARS[field.type]


def _fields(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of field name to value (message fields as dicts): some of the fields, each drawn."""
    if depth > 3:
        return st.just({})
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value = _value(field, depth)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = st.lists(value, max_size=2)
        elif field.is_repeated:
            value = st.lists(value, max_size=3)
        parts[field.name] = value
    return st.fixed_dictionaries({}, optional=parts)


def _fill(message: pb_message.Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for entry in value:
                holder = message.DESCRIPTOR.fields_by_name[name].message_type.fields_by_name
                key = entry.get("key", "" if holder["key"].type == FieldDescriptor.TYPE_STRING else 0)
                if holder["value"].type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(target[key], entry.get("value", {}))
                else:
                    target[key] = entry.get("value", target[key])
        elif field.is_repeated:
            for item in value:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(target.add(), item)
                else:
                    target.append(item)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.SetInParent()
            _fill(target, value)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(message, name, value if value in field.enum_type.values_by_number else 0)
        else:
            setattr(message, name, value)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(METHODS)))
    request = METHODS[method][1]()
    _fill(request, draw(_fields(request.DESCRIPTOR)))
    return method, _guarded(method, request.SerializeToString())


def test_hypothesis_messages_to_every_rpc(fuzz_server: RunningServer) -> None:
    seen: Counter[str] = Counter()
    with grpc.insecure_channel(fuzz_server.address) as channel:

        @settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(_requests())
        def send(sent: tuple[str, bytes]) -> None:
            method, data = sent
            seen[f"{method.rsplit('/', 1)[1]} {_call(channel, method, data).name}"] += 1

        send()
        _still_serving(channel)
    print(dict(sorted(seen.items())))
