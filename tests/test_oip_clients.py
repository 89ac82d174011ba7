"""The Open Inference Protocol tried with its own clients: tritonclient (sync and aio) and the
KServe SDK's InferenceGRPCClient, each run in .tools/venv-oip (`make oip-clients`: they need
protobuf < 7) against a real server here, their answers checked against the models run in
process. Also: proto/inference/ against the descriptor tritonclient ships, and whether
tritonclient and inferd can share one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import descriptor_pb2

from inferd.config import load_config
from inferd.oip import grpc_service_pb2, model_config_pb2

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".tools" / "venv-oip" / "bin" / "python"
CHECKS = Path(__file__).parent / "oip"
WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]

pytestmark = pytest.mark.skipif(not VENV_PYTHON.exists(), reason="no .tools/venv-oip: run `make oip-clients`")


def in_client_venv(*arguments: str, stdin: bytes | None = None) -> Any:
    done = subprocess.run([str(VENV_PYTHON), *arguments], input=stdin, capture_output=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout)


def wine_directly() -> tuple[list[list[float]], str]:
    session = ort.InferenceSession(str(ROOT / "service" / "models" / "wine.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": np.array([WINE], dtype=np.float32)})
    named = dict(zip([output.name for output in session.get_outputs()], outputs))
    return named["probabilities"].tolist(), str(named["label"][0])


def wine_fields() -> list[str]:
    fields = load_config(ROOT / "service" / "inferd.toml").models["wine"].input.fields  # type: ignore[union-attr]
    return [field if isinstance(field, str) else field.name for field in fields]


@pytest.mark.parametrize("seed", [11, 12])
def test_tritonclient_sync(server: Any, seed: int) -> None:
    seen = in_client_venv(str(CHECKS / "triton_check.py"), server.address, "sync", str(seed), ",".join(wine_fields()))
    assert seen["live"] and seen["ready"] and seen["wine_ready"]
    assert {"model_repository", "model_configuration", "statistics"} <= set(seen["extensions"])
    assert seen["wine_metadata"] == {"platform": "onnxruntime_onnx", "inputs": [["input", "FP32", [-1, 13]]]}
    assert seen["digits_config"] == {"max_batch_size": 64, "inputs": [["input", [1, 8, 8]]]}  # batch left out
    assert seen["smollm2_decoupled"] is True
    # Every datatype (FP16, BOOL, BYTES, a size-0 tensor among them) back as it went.
    assert seen["id"] == f"seed-{seed}"
    assert seen["mismatches"] == []
    assert seen["subset_got"] == seen["subset_asked"]
    probabilities, label = wine_directly()
    np.testing.assert_allclose(seen["wine_probabilities"], probabilities, rtol=1e-6)
    # JSON records in one BYTES element: the wine model's tensor adapter reads them.
    [record] = seen["wine_from_records"]
    assert record["label"] == label
    np.testing.assert_allclose([record["probabilities"]], probabilities, rtol=1e-6)
    # The chat model streams tokens, then the empty final response.
    stream = seen["stream"]
    assert len(stream) >= 2 and all("error" not in item for item in stream)
    assert [item["final"] for item in stream] == [False] * (len(stream) - 1) + [True]
    assert all(item["text"] for item in stream[:-1]) and stream[-1]["text"] is None
    assert {item["id"] for item in stream} == {"chat"}
    assert (seen["index_loaded"], seen["index_unloaded"]) == ("READY", "UNAVAILABLE")
    assert seen["unknown_model"][0] == "StatusCode.NOT_FOUND" and "'nope'" in seen["unknown_model"][1]


def test_tritonclient_aio(server: Any) -> None:
    seen = in_client_venv(str(CHECKS / "triton_check.py"), server.address, "aio", "21")
    assert seen["live"] and seen["ready"]
    assert seen["ids"] == [str(i) for i in range(8)]  # eight at once, each its own id
    assert seen["mismatches"] == []
    assert [item["text"] for item in seen["stream"]] == ["one", " two", " three"]


def test_kserve_sdk(server: Any) -> None:
    seen = in_client_venv(str(CHECKS / "kserve_check.py"), server.address)
    assert seen["live"] and seen["ready"] and seen["id"] == "kserve-1"
    probabilities, label = wine_directly()
    assert seen["outputs"]["label"] == [label, label]
    np.testing.assert_allclose(seen["outputs"]["probabilities"], probabilities * 2, rtol=1e-6)
    assert seen["typed"] == [1, -2, 3]  # typed contents, not raw
    assert seen["unknown_model"][0] == "StatusCode.NOT_FOUND"


_COMPARE = """
import sys
from google.protobuf import descriptor_pb2
import tritonclient.grpc.service_pb2 as service, tritonclient.grpc.model_config_pb2 as config
ours = descriptor_pb2.FileDescriptorSet.FromString(sys.stdin.buffer.read())
def strip(message):
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        strip(nested)
for module in (service, config):
    theirs = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(theirs)
    mine = next(f for f in ours.file if f.name == theirs.name)
    for file in (mine, theirs):
        for message in file.message_type:
            strip(message)
    if mine != theirs:
        print(f"{theirs.name} differs from tritonclient's", file=sys.stderr)
        sys.exit(1)
print('"same"')
"""


def test_proto_is_tritonclients() -> None:
    """proto/inference/ (as compiled into inferd.oip) is field for field the descriptor that
    tritonclient ships: the same package, messages, names, numbers, types and services."""
    files = descriptor_pb2.FileDescriptorSet()
    for module in (grpc_service_pb2, model_config_pb2):
        module.DESCRIPTOR.CopyToProto(files.file.add())
    assert in_client_venv("-c", _COMPARE, stdin=files.SerializeToString()) == "same"


_ONE_PROCESS = """
import json, sys, types
import tritonclient.grpc
# inferd's generated code, with tritonclient already loaded (inferd's own imports need grpc
# extras the clients' venv lacks, so the package is stubbed to reach its generated modules).
package = types.ModuleType("inferd"); package.__path__ = [sys.argv[1]]; sys.modules["inferd"] = package
try:
    import inferd.oip.grpc_service_pb2
    print(json.dumps("imported"))
except Exception as error:
    print(json.dumps(f"{type(error).__name__}: {error}"))
"""


def test_tritonclient_and_inferd_in_one_process() -> None:
    """Recorded, not wished: tritonclient 2.73 requires protobuf < 7, and inferd's generated
    code (gencode 7.35) a protobuf 7 runtime, so they cannot share a process (docs/oip.md)."""
    outcome = in_client_venv("-c", _ONE_PROCESS, str(ROOT / "python" / "inferd"))
    assert outcome.startswith("VersionError") and "gencode 7." in outcome and "runtime 6." in outcome, outcome
    assert sys.modules.get("tritonclient") is None  # and the tests themselves keep them apart


def test_the_readmes_tritonclient_call(server: Any) -> None:
    """README.md's tritonclient block, run as it is (only the address changed), prints what the
    README shows."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_readme import readme_block, with_address

    code = with_address(readme_block("oip", "readme"), server.address)
    done = subprocess.run([str(VENV_PYTHON), "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == readme_block("oip-output", "readme").strip()


_VERSIONS = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException
client = triton.InferenceServerClient(sys.argv[1])
def ask(version):
    given = triton.InferInput("input", [1], "BYTES")
    given.set_data_from_numpy(np.array([b'{"x": 1}'], dtype=object))
    answer = client.infer("m", [given], model_version=version)
    return [answer.get_response().model_version, json.loads(answer.as_numpy("output")[0])["version"]]
seen = {"metadata": client.get_model_metadata("m", as_json=True)["versions"],
        "ready": [client.is_model_ready("m", v) for v in ("1", "2", "3")],
        "asked": {v: ask(v) for v in ("", "1", "2")},
        "index": [[m["name"], m["version"]] for m in client.get_model_repository_index(as_json=True)["models"]]}
try:
    ask("3")
except InferenceServerException as error:
    seen["unserved"] = [error.status(), error.message()]
client.unload_model("m")
client.load_model("m")
seen["reloaded"] = ask("")
print(json.dumps(seen))
"""


def test_tritonclient_with_versions() -> None:
    """A model of two served versions (three declared) through tritonclient: model_version
    picks one, an empty one gets the latest, metadata and the index list both."""
    from conftest import RunningServer

    from inferd.config import ServiceConfig

    config = ServiceConfig.model_validate({"models": {"m": {
        "workflow": "workflows_for_tests:Versioned", "options": {"version": "base"},
        "versions": {v: {"options": {"version": v}} for v in ("1", "2", "3")}, "version_policy": {"specific": [1, 2]},
    }}}).with_server(metrics={"address": "127.0.0.1:0"})  # fmt: skip
    running = RunningServer(config)
    try:
        seen = in_client_venv("-c", _VERSIONS, running.address)
    finally:
        running.stop()
    assert seen["metadata"] == ["1", "2"] and seen["ready"] == [True, True, False]
    assert seen["asked"] == {"": ["2", "2"], "1": ["1", "1"], "2": ["2", "2"]}
    assert seen["index"] == [["m", "1"], ["m", "2"]]
    assert seen["unserved"][0] == "StatusCode.NOT_FOUND" and "versions: 1, 2" in seen["unserved"][1]
    assert seen["reloaded"] == ["2", "2"]
