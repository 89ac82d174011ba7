"""A bare grpc.aio server for inferd.v1.Inference/Infer: the limit of the Python gRPC stack.

It answers every Infer call with one fixed, precomputed InferResponse: no engine, no
interceptor, no health or reflection service, and by default no model. With ``--model`` it also
runs that ONNX file on each call's first tensor (ONNX Runtime's CPU provider, inline on the event
loop, as inferd's default service runs wine) before it answers the same fixed bytes: the stack's
limit for a server that runs the model at all. The request is still parsed and the response
still serialized (by the generated message classes; inferd does both with its native codec), and
it runs on the event loop that ``inferd serve`` picks (uvloop where installed; ``--loop`` as
inferd's) with the same channel options, so the gap between this server and inferd is what
inferd itself costs.

    .venv/bin/python benches/bare_server.py --address 127.0.0.1:PORT [--response FILE] [--loop auto]
                                            [--model service/models/wine.onnx]

``--response`` names a file holding a serialized InferResponse (benches/serve passes the
answer inferd gave to the same request, so that both send the same bytes); without it the
answer is a wine-shaped one (label + probabilities [1, 3]) of fixed values.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from inferd.config import EVENT_LOOPS
from inferd.server.app import event_loop_factory
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc


def default_response() -> pb.InferResponse:
    label = b"class_0"
    probabilities = np.array([[0.98, 0.015, 0.005]], dtype="<f4")
    return pb.InferResponse(
        model="wine",
        output=pb.Payload(
            tensors=pb.Tensors(
                tensors=[
                    pb.Tensor(name="label", dtype=pb.DATA_TYPE_STRING, shape=[1], data=len(label).to_bytes(4, "little") + label),
                    pb.Tensor(name="probabilities", dtype=pb.DATA_TYPE_FLOAT32, shape=[1, 3], data=probabilities.tobytes()),
                ]
            )
        ),
        timings=[pb.StageTiming(stage=stage, ms=0.01) for stage in ("adapt", "preprocess", "run", "total")],
    )


class BareInference(pb_grpc.InferenceServicer):
    def __init__(self, response: pb.InferResponse) -> None:
        self._response = response

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.InferResponse:
        return self._response


class BareModelInference(BareInference):
    """Runs the model on the request's first tensor (float32), then answers the fixed bytes."""

    def __init__(self, response: pb.InferResponse, model: Path) -> None:
        import onnxruntime as ort

        super().__init__(response)
        options = ort.SessionOptions()
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.InferResponse:
        tensor = request.input.tensors.tensors[0]
        features = np.frombuffer(tensor.data, dtype="<f4").reshape(tuple(tensor.shape))
        self._session.run(self._outputs, {self._input: features})
        return self._response


async def serve(address: str, servicer: BareInference) -> None:
    options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.so_reuseport", 1),
    ]
    server = grpc.aio.server(options=options)
    pb_grpc.add_InferenceServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"bare_server: cannot listen on {address}")
    await server.start()
    print(f"bare server listening on {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50052")
    parser.add_argument("--response", type=Path, help="a serialized InferResponse to answer with")
    parser.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                        help="event loop, as inferd serve's --loop (default auto: uvloop where installed)")
    parser.add_argument("--model", type=Path, help="an ONNX file to run on each call's first tensor before answering")
    args = parser.parse_args()
    response = pb.InferResponse.FromString(args.response.read_bytes()) if args.response else default_response()
    servicer = BareModelInference(response, args.model) if args.model else BareInference(response)  # type: ignore[abstract]
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
        runner.run(serve(args.address, servicer))


if __name__ == "__main__":
    main()
