"""What is measured: a target's request bytes, the protoset ghz needs, how its answer is
decoded, and the answer it must give (ONNX Runtime run directly); the check of an answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    ALL_TARGETS,
    BENCHES,
    INFERD_INFER,
    KSERVE_INFER,
    MLSERVER_VENV,
    OIP_PROTO,
    WINE,
    WINE_FEATURES,
    WINE_ONNX,
    WORK,
)


@dataclass
class Target:
    name: str
    server: str  # which server process serves it (several targets share one inferd)
    method: str
    request: bytes
    protoset: Path
    decode: Callable[[bytes], dict[str, Any]]
    want: dict[str, Any]
    concurrency: list[int]
    model: str = "wine"
    #: gRPC metadata sent with every call (Ray Serve routes by "application").
    metadata: dict[str, str] | None = None



def write_protoset(path: Path, files: list[Any]) -> None:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet()
    for file in files:
        file.CopyToProto(fds.file.add())
    path.write_bytes(fds.SerializeToString())


def kserve_messages() -> dict[str, Any]:
    """KServe v2 message classes, from MLServer's own compiled dataplane.proto (as a protoset
    written by MLServer's venv: MLServer ships no .proto file)."""
    from google.protobuf import descriptor_pb2, message_factory

    protoset = WORK / "kserve.protoset"
    if not protoset.exists():
        code = (
            "import sys; from google.protobuf import descriptor_pb2; from mlserver.grpc import dataplane_pb2 as d;"
            "s = descriptor_pb2.FileDescriptorSet(); d.DESCRIPTOR.CopyToProto(s.file.add());"
            "open(sys.argv[1], 'wb').write(s.SerializeToString())"
        )
        subprocess.run([str(MLSERVER_VENV / "bin" / "python"), "-c", code, str(protoset)], check=True)
    fds = descriptor_pb2.FileDescriptorSet.FromString(protoset.read_bytes())
    return dict(message_factory.GetMessages(list(fds.file)))


def inferd_protoset() -> Path:
    from google.protobuf import struct_pb2

    from inferd.v1 import inference_pb2

    path = WORK / "inferd.protoset"
    write_protoset(path, [struct_pb2.DESCRIPTOR, inference_pb2.DESCRIPTOR])
    return path


def tensor_request(model: str, array: Any) -> bytes:
    from inferd.v1 import inference_pb2 as pb

    tensor = pb.Tensor(name="input", dtype=pb.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.astype("<f4").tobytes())
    return pb.InferRequest(model=model, input=pb.Payload(tensors=pb.Tensors(tensors=[tensor]))).SerializeToString()


def json_request(model: str, record: dict[str, float]) -> bytes:
    from inferd.v1 import inference_pb2 as pb

    return pb.InferRequest(model=model, input=pb.Payload(json=json.dumps([record]).encode())).SerializeToString()


def inferd_outputs(answer: bytes) -> dict[str, Any]:
    """An InferResponse's outputs as numpy arrays / lists, whatever payload kind it is."""
    import numpy as np

    from inferd.v1 import inference_pb2 as pb

    response = pb.InferResponse.FromString(answer)
    kind = response.output.WhichOneof("kind")
    if kind == "json":
        records = json.loads(response.output.json)
        return {key: np.array([record[key] for record in records]) for key in records[0]}
    outputs: dict[str, Any] = {}
    for tensor in response.output.tensors.tensors:
        if tensor.dtype == pb.DATA_TYPE_STRING:
            data, strings, offset = tensor.data, [], 0
            while offset < len(data):
                length = int.from_bytes(data[offset : offset + 4], "little")
                strings.append(data[offset + 4 : offset + 4 + length].decode())
                offset += 4 + length
            outputs[tensor.name] = np.array(strings).reshape(tuple(tensor.shape))
        else:
            outputs[tensor.name] = np.frombuffer(tensor.data, dtype="<f4").reshape(tuple(tensor.shape))
    return outputs


def kserve_outputs(messages: dict[str, Any], answer: bytes) -> dict[str, Any]:
    import numpy as np

    response = messages["inference.ModelInferResponse"].FromString(answer)
    outputs: dict[str, Any] = {}
    for index, output in enumerate(response.outputs):
        shape = tuple(output.shape)
        if response.raw_output_contents:
            raw = response.raw_output_contents[index]
            if output.datatype == "BYTES":
                strings, offset = [], 0
                while offset < len(raw):
                    length = int.from_bytes(raw[offset : offset + 4], "little")
                    strings.append(raw[offset + 4 : offset + 4 + length].decode())
                    offset += 4 + length
                outputs[output.name] = np.array(strings).reshape(shape)
            else:
                outputs[output.name] = np.frombuffer(raw, dtype="<f4").reshape(shape)
        elif output.datatype == "BYTES":
            outputs[output.name] = np.array([b.decode() for b in output.contents.bytes_contents]).reshape(shape)
        else:
            outputs[output.name] = np.array(output.contents.fp32_contents, dtype=np.float32).reshape(shape)
    return outputs


def oip_request(model: str, array: Any) -> bytes:
    """The Open Inference Protocol's ModelInferRequest (inferd.oip, generated from
    proto/inference/): one input "input" FP32, its bytes in raw_input_contents."""
    from inferd.oip import grpc_service_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(array.shape))
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[array.astype("<f4").tobytes()]).SerializeToString()


def oip_outputs(answer: bytes) -> dict[str, Any]:
    from inferd.oip import grpc_service_pb2 as pb

    return kserve_outputs({"inference.ModelInferResponse": pb.ModelInferResponse}, answer)


def reference(model: Path, array: Any) -> dict[str, Any]:
    """What ONNX Runtime answers when run directly."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_outputs()]
    return {name: np.asarray(value) for name, value in zip(names, session.run(names, {"input": array}))}


def same_answer(got: dict[str, Any], want: dict[str, Any]) -> str | None:
    """None when ``got`` has ``want``'s outputs with the same values; else what differs."""
    import numpy as np

    for name, expected in want.items():
        if name not in got:
            return f"output {name!r} missing (got {sorted(got)})"
        value = np.asarray(got[name])
        if expected.dtype.kind in "OUS":
            if [str(v) for v in value.reshape(-1)] != [str(v) for v in expected.reshape(-1)]:
                return f"{name}: {value.tolist()} != {expected.tolist()}"
        elif value.size != expected.size or not np.allclose(value.reshape(-1), expected.reshape(-1), rtol=1e-4, atol=1e-5):
            return f"{name}: {value.reshape(-1)[:4].tolist()}... != {expected.reshape(-1)[:4].tolist()}..."
    return None



def build_targets(names: list[str], concurrency: list[int], mlp_concurrency: list[int]) -> list[Target]:
    import numpy as np

    sys.path.insert(0, str(BENCHES))
    from models import ensure_models

    wine = np.array([WINE], dtype=np.float32)
    wine_want = reference(WINE_ONNX, wine)
    record = dict(zip(WINE_FEATURES, WINE))
    inferd_set = inferd_protoset()
    targets: list[Target] = []
    for name in names:
        if name in ("inferd-off", "inferd-on"):
            server = "inferd-" + name.split("-")[1]
            targets.append(Target(name, server, INFERD_INFER, tensor_request("wine", wine), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name in ("inferd-json", "inferd-on-json"):
            server = "inferd-on" if name == "inferd-on-json" else "inferd-off"
            targets.append(Target(name, server, INFERD_INFER, json_request("wine", record), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name in ("bare", "bare-model", "bare-asyncio", "inferd-asyncio", "inferd-nometrics", "inferd-traced"):
            targets.append(Target(name, name, INFERD_INFER, tensor_request("wine", wine), inferd_set, inferd_outputs, wine_want, concurrency))
        elif name.startswith("mlserver"):
            messages = kserve_messages()
            request = messages["inference.ModelInferRequest"](
                model_name="wine",
                inputs=[{"name": "input", "datatype": "FP32", "shape": [1, 13], "contents": {"fp32_contents": WINE}}],
            ).SerializeToString()
            decode = (lambda m: lambda answer: kserve_outputs(m, answer))(messages)
            targets.append(Target(name, name, KSERVE_INFER, request, WORK / "kserve.protoset", decode, wine_want, concurrency))
        elif name in ("inferd-oip", "triton", "triton-batching", "ray"):
            # The same ModelInferRequest for all; ghz loads the OIP from proto/inference/.
            server = "inferd-off" if name == "inferd-oip" else name
            metadata = {"application": "wine"} if name == "ray" else None
            request = oip_request("wine", wine)
            targets.append(Target(name, server, KSERVE_INFER, request, OIP_PROTO, oip_outputs, wine_want, concurrency, metadata=metadata))
        elif name in ("mlp-off", "mlp-on"):
            mlp = ensure_models()
            row = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
            server = "inferd-" + name.split("-")[1]
            targets.append(Target(name, server, INFERD_INFER, tensor_request("mlp", row), inferd_set, inferd_outputs, reference(mlp, row), mlp_concurrency, "mlp"))
        else:
            raise SystemExit(f"unknown target {name!r}; known: {', '.join(ALL_TARGETS)}")
    return targets


def wine_response(want: dict[str, Any]) -> Path:
    """An InferResponse carrying ONNX Runtime's own wine answer, for the bare server when no
    inferd answer is at hand (``--targets bare`` alone)."""
    from inferd.v1 import inference_pb2 as pb

    tensors = []
    for name, value in want.items():
        if value.dtype.kind in "OUS":
            data = b"".join(len(b).to_bytes(4, "little") + b for b in (str(v).encode() for v in value.reshape(-1)))
            tensors.append(pb.Tensor(name=name, dtype=pb.DATA_TYPE_STRING, shape=list(value.shape), data=data))
        else:
            tensors.append(pb.Tensor(name=name, dtype=pb.DATA_TYPE_FLOAT32, shape=list(value.shape), data=value.astype("<f4").tobytes()))
    path = WORK / "bare-response.bin"
    path.write_bytes(pb.InferResponse(model="wine", output=pb.Payload(tensors=pb.Tensors(tensors=tensors))).SerializeToString())
    return path

