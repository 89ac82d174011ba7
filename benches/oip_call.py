"""A whole wine call's cost in the server's process, without grpc: request bytes through the
method's deserializer, its handler (the engine, the wine model's run) and its serializer to
the answer's bytes. inferd.v1's ``Infer`` against the Open Inference Protocol's ``ModelInfer``,
the latter both with the native writer and with the message class writing the answer (the
native writer made to decline, so that ``write_response`` falls back: the code of before),
interleaved, the best of 200 rounds of 250 calls each (a shared machine's other work only
ever adds).

    PYTHONPATH=python .venv/bin/python benches/oip_call.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from inferd import _native
from inferd.config import load_config
from inferd.engine import Engine
from inferd.oip import grpc_service_pb2 as oip
from inferd.server.oip import OIP_CODECS, OipServicer
from inferd.server.servicer import WIRE_CODECS, InferenceServicer
from inferd.v1 import inference_pb2 as pb

CONFIG = """
[server]
log_level = "warning"
[models.wine]
workflow = "onnx"
path = "{path}"
inline = true
input = {{ format = "tensor", name = "input", fields = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315", "proline",
] }}
"""
#: Rounds of 250 calls of each, interleaved: many short ones, so that some of each miss the
#: other work of a shared machine.
ROUNDS = 200
WINE = Path(__file__).resolve().parent.parent / "service" / "models" / "wine.onnx"


class Context:
    """What the handlers ask of grpc's context: no deadline."""

    def time_remaining(self) -> None:
        return None


def requests() -> tuple[bytes, bytes]:
    row = np.random.default_rng(0).random((1, 13), dtype=np.float32)
    v1 = pb.InferRequest(model="wine", id="r1")
    tensor = v1.input.tensors.tensors.add(name="input", dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 13])
    tensor.data = row.tobytes()
    request = oip.ModelInferRequest(model_name="wine", id="r1")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 13])
    request.raw_input_contents.append(row.tobytes())
    return v1.SerializeToString(), request.SerializeToString()


async def per_call_us(call: Callable[[], Awaitable[bytes]], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        await call()
    return (time.perf_counter() - started) / number * 1e6


async def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config_file:
        config_file.write(CONFIG.format(path=WINE))
        config_file.flush()
        engine = Engine(load_config(config_file.name))
    await engine.start()
    v1_servicer, oip_servicer, context = InferenceServicer(engine), OipServicer(engine), Context()
    v1_data, oip_data = requests()
    v1_read, v1_write = WIRE_CODECS["Infer"]
    oip_read, oip_write = OIP_CODECS["ModelInfer"]
    assert v1_read and v1_write and oip_read and oip_write
    native_writer = _native.encode_infer_response

    async def v1() -> bytes:
        return v1_write(await v1_servicer.Infer(v1_read(v1_data), context))  # type: ignore[arg-type]

    async def over_oip() -> bytes:
        return oip_write(await oip_servicer.ModelInfer(oip_read(oip_data), context))

    def declined(*arguments: Any) -> None:
        return None

    def use_native_writer(native: bool) -> None:
        # (write_response calls it through the module, so this is what it finds.)
        setattr(_native, "encode_infer_response", native_writer if native else declined)  # noqa: B010

    # (name, call, whether the native writer writes the OIP's answer)
    calls: list[tuple[str, Callable[[], Awaitable[bytes]], bool]] = [
        ("inferd.v1 Infer", v1, True),
        ("OIP ModelInfer, message class writes", over_oip, False),
        ("OIP ModelInfer, native writer", over_oip, True),
    ]
    written = {}
    for name, call, native in calls[1:]:
        use_native_writer(native)
        answer = await oip_servicer.ModelInfer(oip_read(oip_data), context)
        assert isinstance(answer, bytes) == native, name  # which writer wrote it
        written[name] = oip.ModelInferResponse.FromString(await call())
    assert len(set(map(str, written.values()))) == 1  # the same answer either way
    best: dict[str, float] = {name: float("inf") for name, _, _ in calls}
    for _ in range(ROUNDS):
        for name, call, native in calls:
            use_native_writer(native)
            best[name] = min(best[name], await per_call_us(call, 250))
    use_native_writer(True)
    for name, us in best.items():
        print(f"{name}: {us:.1f} us a call ({us / best['inferd.v1 Infer']:.2f}x inferd.v1)")
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
