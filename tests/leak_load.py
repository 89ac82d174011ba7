"""The load of the leak tests (test_leaks.py): every class of refused or failed request, and a
sender that runs as a process of its own, so that what the client allocates is never counted
as the server's.

    python tests/leak_load.py ADDRESS COUNT CASE [CASE ...]

sends COUNT requests, taking the named cases in turn, 16 at a time, and prints how each ended
as JSON: {"method status": count}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from inferd.v1 import inference_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 16
TOKEN = "leak-test-token"
SERVICE = "/inferd.v1.Inference/"

CONFIG = f"""
[server]
threads = 32  # a cap on the models' own stage threads together (they need 25)
[server.auth]
tokens = [{{ name = "tests", token = "{TOKEN}" }}]

[models.wine]
workflow = "onnx"
path = "{ROOT / "service" / "models" / "wine.onnx"}"
inline = true
input = {{ format = "tensor", name = "input", fields = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280_od315", "proline",
] }}

[models.digits]
workflow = "torch"
path = "{ROOT / "service" / "models" / "digits.pt2"}"
batching = {{ max_batch_size = 8, max_delay_ms = 1 }}
[models.digits.options]
inputs = [{{ name = "input", dtype = "float32", shape = [-1, 1, 8, 8] }}]
outputs = ["logits", "label"]

[models.echo]
workflow = "echo"

[models.crashing]
workflow = "workflows_for_tests:Crashing"

[models.sleeper]
workflow = "workflows_for_tests:Sleeper"

[models.ticker]
workflow = "workflows_for_tests:Ticker"
"""

AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _tensor(name: str, dtype: int, shape: list[int], data: bytes) -> pb.Payload:
    return pb.Payload(tensors=pb.Tensors(tensors=[pb.Tensor(name=name, dtype=dtype, shape=shape, data=data)]))


def _infer(model: str, payload: pb.Payload | None = None, **fields: object) -> bytes:
    request = pb.InferRequest(model=model, id="leak", **fields)  # type: ignore[arg-type]
    if payload is not None:
        request.input.CopyFrom(payload)
    return request.SerializeToString()


def _parameters(**values: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


WINE_RECORD = b'[{"alcohol": 13.2, "malic_acid": 1.78}]'  # 11 fields missing
F32 = pb.DATA_TYPE_FLOAT32


@dataclass(frozen=True)
class Case:
    """One class of request: what is sent, and the status it must end with."""

    method: str
    request: bytes
    codes: frozenset[grpc.StatusCode]
    metadata: tuple[tuple[str, str], ...] | None = AUTH
    #: "unary", "stream" (read to the end), "cancel" (the client cancels mid-call),
    #: "deadline" (a 5 ms deadline on a 20 ms model).
    mode: str = "unary"


def _codes(*names: str) -> frozenset[grpc.StatusCode]:
    return frozenset(grpc.StatusCode[name] for name in names)


INVALID = _codes("INVALID_ARGUMENT")
CASES: dict[str, Case] = {
    # Refused by the request reader.
    "infer-malformed-bytes": Case("Infer", b"\x0a\xff\xff\xff\xff\x0f", INVALID),
    "infer-no-input": Case("Infer", _infer("wine"), INVALID),
    "infer-tensor-size": Case("Infer", _infer("wine", _tensor("input", F32, [1, 13], b"abc")), INVALID),
    "infer-tensor-dtype": Case("Infer", _infer("wine", _tensor("input", 99, [1, 13], b"")), INVALID),
    "infer-tensor-negative-shape": Case("Infer", _infer("wine", _tensor("input", F32, [1, -13], b"")), INVALID),
    "infer-tensor-huge-shape": Case("Infer", _infer("wine", _tensor("input", F32, [0, 2**62, 2**62], b"")), INVALID),
    "infer-tensor-twice": Case(
        "Infer",
        _infer("wine", pb.Payload(tensors=pb.Tensors(tensors=[pb.Tensor(name="input", dtype=F32, shape=[0])] * 2))),
        INVALID,
    ),
    "infer-bad-parameters": Case("Infer", _infer("echo", pb.Payload(text="hi"), parameters=_parameters(x=1)), INVALID),
    # Refused by the adapters and the model's checks.
    "infer-records-missing-field": Case("Infer", _infer("wine", pb.Payload(json=WINE_RECORD)), INVALID),
    "infer-records-malformed-json": Case("Infer", _infer("wine", pb.Payload(json=b'[{"alcohol": ')), INVALID),
    "infer-tensor-wrong-shape": Case(
        "Infer", _infer("digits", _tensor("input", F32, [1, 2, 8, 8], bytes(512))), INVALID
    ),
    # Refused before the model: unknown model, authentication.
    "infer-unknown-model": Case("Infer", _infer("no-such-model", pb.Payload(text="x")), _codes("NOT_FOUND")),
    "infer-no-token": Case("Infer", _infer("wine", pb.Payload(json=WINE_RECORD)), _codes("UNAUTHENTICATED"), None),
    "infer-wrong-token": Case(
        "Infer", _infer("wine", pb.Payload(json=WINE_RECORD)), _codes("UNAUTHENTICATED"), (("authorization", "Bearer x"),)
    ),
    "infer-malformed-no-token": Case("Infer", b"\x0a\xff\xff\xff\xff\x0f", _codes("UNAUTHENTICATED"), None),
    # Failed by the model, cancelled, or out of time.
    "infer-model-raises": Case("Infer", _infer("crashing", pb.Payload(text="x")), _codes("INTERNAL")),
    "infer-cancelled": Case("Infer", _infer("sleeper", pb.Payload(text="x")), _codes("CANCELLED"), mode="cancel"),
    "infer-deadline": Case("Infer", _infer("sleeper", pb.Payload(text="x")), _codes("DEADLINE_EXCEEDED"), mode="deadline"),
    # Stream.
    "stream-malformed-bytes": Case("Stream", b"\x0a\xff\xff\xff\xff\x0f", INVALID, mode="stream"),
    "stream-no-input": Case("Stream", _infer("echo"), INVALID, mode="stream"),
    "stream-unknown-model": Case("Stream", _infer("no-such-model", pb.Payload(text="x")), _codes("NOT_FOUND"), mode="stream"),
    "stream-unary-model": Case("Stream", _infer("crashing", pb.Payload(text="x")), _codes("UNIMPLEMENTED"), mode="stream"),
    "stream-no-token": Case("Stream", _infer("echo", pb.Payload(text="x")), _codes("UNAUTHENTICATED"), None, "stream"),
    "stream-cancelled": Case("Stream", _infer("ticker", pb.Payload(text="x")), _codes("CANCELLED"), mode="cancel"),
    # Setup and ListModels.
    "setup-unknown-model": Case("Setup", pb.SetupRequest(model="no-such-model").SerializeToString(), _codes("NOT_FOUND")),
    "setup-malformed-bytes": Case("Setup", b"\x0a\xff\xff\xff\xff\x0f", INVALID),
    "setup-no-token": Case("Setup", pb.SetupRequest(model="wine").SerializeToString(), _codes("UNAUTHENTICATED"), None),
    "list-models-malformed-bytes": Case("ListModels", b"\x0a\xff\xff\xff\xff\x0f", INVALID),
    "list-models-no-token": Case("ListModels", b"", _codes("UNAUTHENTICATED"), None),
    # Served requests, for comparison: they must not leak either.
    "infer-served": Case("Infer", _infer("echo", pb.Payload(text="a b c")), _codes("OK")),
    "list-models-served": Case("ListModels", b"", _codes("OK")),
}


async def _one(channel: grpc.aio.Channel, case: Case) -> grpc.StatusCode:
    method = SERVICE + case.method
    try:
        if case.method == "Stream":
            call = channel.unary_stream(method)(case.request, metadata=case.metadata)
            if case.mode == "cancel":
                await call.read()  # the stream has started
                call.cancel()
            while await call.read() is not grpc.aio.EOF:
                pass
            return await call.code()
        unary = channel.unary_unary(method)
        if case.mode == "deadline":
            await unary(case.request, metadata=case.metadata, timeout=0.005)
        elif case.mode == "cancel":
            pending = unary(case.request, metadata=case.metadata)
            await asyncio.sleep(0.002)
            pending.cancel()
            await pending
        else:
            await unary(case.request, metadata=case.metadata)
        return grpc.StatusCode.OK
    except asyncio.CancelledError:
        return grpc.StatusCode.CANCELLED
    except grpc.aio.AioRpcError as error:
        return error.code()


def send(address: str, cases: list[Case], count: int) -> dict[str, int]:
    """Sends ``count`` requests, taking ``cases`` in turn, CONCURRENCY at a time; counts their
    endings by "method status". Runs its own event loop and channel."""

    async def main() -> dict[str, int]:
        seen: dict[str, int] = {}
        async with grpc.aio.insecure_channel(address) as channel:
            turns = iter(range(count))

            async def worker() -> None:
                for turn in turns:
                    case = cases[turn % len(cases)]
                    key = f"{case.method} {(await _one(channel, case)).name}"
                    seen[key] = seen.get(key, 0) + 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return seen

    return asyncio.run(main())




if __name__ == "__main__":
    address, count, *names = sys.argv[1:]
    print(json.dumps(send(address, [CASES[name] for name in names], int(count))))
