"""A peer for benches/serve: Ray Serve's gRPC proxy serving wine.onnx over the Open Inference
Protocol (inference.GRPCInferenceService/ModelInfer), the model run with onnxruntime (CPU,
default session options) in one replica.

    benches/.venv-ray/bin/python benches/peers/ray_server.py --model service/models/wine.onnx \
        --grpc-port 9000 --http-port 8000

The servicer is the OIP code generated from proto/inference/*.proto into benches/peers/_oip/
(benches/serve_setup.sh). Ray Serve's gRPC proxy routes by the ``application`` metadata key; with
one application (here ``wine``) it routes there without it. Runs in benches/.venv-ray only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_oip"))

import numpy as np  # noqa: E402
from ray import serve  # noqa: E402
from ray.serve.config import gRPCOptions  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Wine:
    def __init__(self, model: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [node.name for node in self.session.get_outputs()]

    def ModelInfer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:  # noqa: N802 (the RPC's name)
        spec = request.inputs[0]
        if request.raw_input_contents:
            features = np.frombuffer(request.raw_input_contents[0], dtype="<f4").reshape(tuple(spec.shape))
        else:
            features = np.array(spec.contents.fp32_contents, dtype=np.float32).reshape(tuple(spec.shape))
        response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
        for name, value in zip(self.outputs, self.session.run(self.outputs, {self.input: features})):
            if value.dtype.kind in "OUS":
                items = [str(v).encode() for v in value.reshape(-1)]
                raw, datatype = b"".join(len(b).to_bytes(4, "little") + b for b in items), "BYTES"
            else:
                raw, datatype = np.ascontiguousarray(value, dtype="<f4").tobytes(), "FP32"
            response.outputs.add(name=name, datatype=datatype, shape=list(value.shape))
            response.raw_output_contents.append(raw)
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    import os

    import ray

    # Ray's workers (the proxy imports the servicer function by name) find _oip/ through this.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "_oip"), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    serve.start(
        http_options={"host": args.address, "port": args.http_port},
        grpc_options=gRPCOptions(port=args.grpc_port, grpc_servicer_functions=["grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"]),
    )
    serve.run(Wine.bind(str(args.model.resolve())), name="wine")
    print(f"ray_server: serving wine on gRPC port {args.grpc_port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
