"""The per-request cost of reading a ModelInferRequest, as ModelInfer's deserializer and the
servicer do: before (the generated message class, then the Python reader) and after (the
native core, ``inferd.server.oip.read_infer_request``, then the Python reader's native path).

    PYTHONPATH=python .venv/bin/python benches/oip_read.py
"""

from __future__ import annotations

import timeit

import numpy as np

from inferd.oip import grpc_service_pb2 as pb
from inferd.server.oip import read_infer_request
from inferd.server.oip_tensors import read_request


def wine(rows: int) -> bytes:
    request = pb.ModelInferRequest(model_name="wine", id="r1")
    request.inputs.add(name="input", datatype="FP32", shape=[rows, 13])
    request.raw_input_contents.append(np.random.default_rng(0).random((rows, 13), dtype=np.float32).tobytes())
    return request.SerializeToString()


def per_call_us(function: object, number: int, repeat: int = 9) -> float:
    """The best of ``repeat`` runs (a shared machine's other work only ever adds), per call."""
    times = timeit.repeat(function, number=number, repeat=repeat)  # type: ignore[arg-type]
    return min(times) / number * 1e6


def main() -> None:
    for rows in (1, 64):
        data = wine(rows)
        before = per_call_us(lambda: read_request(pb.ModelInferRequest.FromString(data), "tensor"), 20000)
        after = per_call_us(lambda: read_request(read_infer_request(data), "tensor"), 20000)
        print(f"wine {rows}x13 FP32 ({len(data)} bytes): before {before:.2f} us, after {after:.2f} us "
              f"({before / after:.1f}x)")


if __name__ == "__main__":
    main()
