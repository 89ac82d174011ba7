"""The per-answer cost of writing a ModelInferResponse, from the engine's named arrays to the
bytes that go on the wire, as ModelInfer does: before (the generated message class,
``write_arrays`` and ``write_parameters``, then its serialization) and after (the native core,
``inferd.server.oip_tensors.write_response``, whose bytes the serializer passes as they are).

    PYTHONPATH=python .venv/bin/python benches/oip_write.py
"""

from __future__ import annotations

import timeit
from typing import Any

import numpy as np

from inferd.oip import grpc_service_pb2 as pb
from inferd.server.oip import serialize_response
from inferd.server.oip_tensors import write_arrays, write_parameters, write_response


def wine(rows: int) -> dict[str, Any]:
    """wine.onnx's answer: a string label and three float32 probabilities a row."""
    label = np.empty(rows, dtype=object)
    label[:] = ["1"] * rows
    return {"label": label, "probabilities": np.random.default_rng(0).random((rows, 3), dtype=np.float32)}


def before(arrays: dict[str, Any], parameters: dict[str, Any] | None) -> bytes:
    response = pb.ModelInferResponse(model_name="wine", model_version="1", id="r1")
    write_arrays(response, arrays)
    if parameters:
        write_parameters(response.parameters, parameters)
    return bytes(response.SerializeToString())


def after(arrays: dict[str, Any], parameters: dict[str, Any] | None) -> bytes:
    return serialize_response(write_response("wine", "1", "r1", arrays, parameters))


def per_call_us(function: object, number: int, repeat: int = 9) -> float:
    """The best of ``repeat`` runs (a shared machine's other work only ever adds), per call."""
    times = timeit.repeat(function, number=number, repeat=repeat)  # type: ignore[arg-type]
    return min(times) / number * 1e6


def main() -> None:
    for rows, parameters in ((1, None), (1, {"triton_final_response": True}), (64, None)):
        arrays = wine(rows)
        old, new = before(arrays, parameters), after(arrays, parameters)
        assert pb.ModelInferResponse.FromString(old) == pb.ModelInferResponse.FromString(new)
        then = per_call_us(lambda: before(arrays, parameters), 20000)
        now = per_call_us(lambda: after(arrays, parameters), 20000)
        what = f"wine answer, {rows} row{'s' if rows > 1 else ''}{', a parameter' if parameters else ''}"
        print(f"{what} ({len(new)} bytes): before {then:.2f} us, after {now:.2f} us ({then / now:.1f}x)")


if __name__ == "__main__":
    main()
