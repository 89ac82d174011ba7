"""The onnx and torch workflows' own promises: every torch format loads and answers alike,
pickles cannot run code, and ONNX falls back to CPU quietly when there is no GPU."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, RunningServer, service_config
from sklearn.datasets import load_digits

from inferd import ModelNotReady
from inferd.config import ModelConfig

sys.path.insert(0, str(ROOT / "service"))
from digits import DigitsCNN  # noqa: E402

INPUTS = [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}]


class Exploit:
    """A pickle that would create a file if it were ever unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def torch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    folder = tmp_path_factory.mktemp("torch")
    torch.manual_seed(1)
    model = DigitsCNN().eval()
    example = torch.zeros(2, 1, 8, 8)
    with warnings.catch_warnings():  # TorchScript is deprecated, and still what many users have
        # A FutureWarning or a DeprecationWarning, depending on torch's version.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(model, example), str(folder / "digits.ts"))
    torch.export.save(
        torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", max=1024)},)),
        str(folder / "digits.pt2"),
    )
    torch.save(model.state_dict(), folder / "digits.pth")
    torch.save({"weights": Exploit(folder / "pwned")}, folder / "evil.pth")
    # An ONNX model whose input declares no rank: y = x, whatever its shape.
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "any_rank",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model_proto, str(folder / "any_rank.onnx"))
    common = {"workflow": "torch", "setup": "lazy"}
    options = {"inputs": INPUTS, "outputs": ["logits", "label"]}
    tables = {
        "ts": {**common, "path": str(folder / "digits.ts"), "options": options},
        "export": {**common, "path": str(folder / "digits.pt2"), "options": options},
        "state": {**common, "path": str(folder / "digits.pth"), "options": {**options, "module": "digits:DigitsCNN"}},
        "evil": {**common, "path": str(folder / "evil.pth"), "options": {**options, "module": "digits:DigitsCNN"}},
        "no-module": {**common, "path": str(folder / "digits.pth"), "options": options},
        "any-rank": {"workflow": "onnx", "path": str(folder / "any_rank.onnx"), "setup": "lazy"},
        "cuda-first": {
            "workflow": "onnx",
            "path": str(ROOT / "service" / "models" / "wine.onnx"),
            "setup": "lazy",
            "options": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
        },
    }
    config = service_config()
    models = {name: ModelConfig.model_validate(table) for name, table in tables.items()}
    running = RunningServer(config.model_copy(update={"models": models}))
    yield running, folder
    running.stop()


def test_every_torch_format_answers_alike(torch_server: tuple[RunningServer, Path]) -> None:
    server, _ = torch_server
    images = load_digits().images[:16].astype(np.float32)[:, None]
    torch.manual_seed(1)
    with torch.inference_mode():
        logits, labels = DigitsCNN().eval()(torch.from_numpy(images))
    with server.client(timeout=60) as client:
        for model in ("ts", "export", "state"):
            output = client.infer(model, {"input": images}).output
            np.testing.assert_allclose(output["logits"], logits.numpy(), rtol=1e-5, atol=1e-5, err_msg=model)
            np.testing.assert_array_equal(output["label"], labels.numpy())
        states = {m.name: m.state for m in client.models()}
    assert states["ts"] == states["export"] == states["state"] == "ready"


def test_pickles_never_run_code(torch_server: tuple[RunningServer, Path]) -> None:
    server, folder = torch_server
    with server.client(timeout=60) as client, pytest.raises(ModelNotReady) as error:
        client.setup("evil")
    assert "weights_only" in str(error.value) or "Unsupported" in str(error.value)
    assert not (folder / "pwned").exists()


def test_state_dict_needs_a_module(torch_server: tuple[RunningServer, Path]) -> None:
    server, _ = torch_server
    with server.client(timeout=60) as client, pytest.raises(ModelNotReady) as error:
        client.setup("no-module")
    assert "module" in str(error.value)


def test_an_onnx_input_of_undeclared_rank_takes_any_shape(torch_server: tuple[RunningServer, Path]) -> None:
    server, _ = torch_server
    with server.client(timeout=60) as client:
        client.setup("any-rank")
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.testing.assert_array_equal(client.infer("any-rank", {"x": x}).output["y"], x)
        info = next(model for model in client.models() if model.name == "any-rank")
    assert info.inputs == [{"name": "x", "dtype": "float32", "shape": None}]
    assert info.outputs == [{"name": "y", "dtype": "float32", "shape": None}]


def test_onnx_falls_back_to_cpu_quietly(torch_server: tuple[RunningServer, Path], caplog: pytest.LogCaptureFixture) -> None:
    server, _ = torch_server
    with caplog.at_level(logging.INFO):
        with server.client(timeout=60) as client:
            client.setup("cuda-first")
            output = client.infer("cuda-first", {"input": np.ones((1, 13), np.float32)}).output
    assert output["probabilities"].shape == (1, 3)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    provider_lines = [r.getMessage() for r in caplog.records if "providers" in r.getMessage()]
    assert provider_lines and "CPUExecutionProvider" in provider_lines[-1]


def test_gpu_check_runs_and_reports_where_models_ran(tmp_path: Path) -> None:
    """benches/gpu_check.py is for machines with a GPU; here it must report the CPU fallback."""
    import json
    import subprocess

    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "gpu_check.py"), "--seconds", "0.2", "--batch", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["models"]["wine"]["matches_cpu"] and report["models"]["digits"]["matches_cpu"]
    if report["cuda_devices"] == 0:
        assert report["models"]["wine"]["providers"] == ["CPUExecutionProvider"]
        assert report["models"]["digits"]["device"] == "cpu"
    else:  # on a GPU machine both must really have run there
        assert report["models"]["wine"]["providers"][0] == "CUDAExecutionProvider"
        assert report["models"]["digits"]["device"].startswith("cuda")


def test_a_torch_model_set_up_while_transformers_loads_gets_real_weights(
    torch_server: tuple[RunningServer, Path],
) -> None:
    """Eager models are set up concurrently. transformers' loading patches torch for every
    thread (accelerate's ``init_empty_weights`` puts new parameters on the meta device), so a
    torch model built meanwhile came out empty ("Cannot copy out of meta tensor"). The torch
    workflow now waits for the load lock that textgen and tts hold while they load."""
    import threading

    from accelerate import init_empty_weights

    from inferd.workflows._loading import MODEL_LOAD_LOCK
    from inferd.workflows.torch import TorchWorkflow

    _, folder = torch_server
    workflow = TorchWorkflow(folder / "digits.pt2", inputs=INPUTS, outputs=["logits", "label"])
    failures: list[BaseException] = []

    def set_up() -> None:
        try:
            workflow.setup()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    thread = threading.Thread(target=set_up)
    with MODEL_LOAD_LOCK, init_empty_weights():  # what textgen's load does, on this thread
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the torch workflow was set up while transformers patched torch"
    thread.join(120)
    assert not failures, failures
    assert all(parameter.device.type != "meta" for parameter in workflow.model.parameters())
    torch.manual_seed(1)
    reference = DigitsCNN().eval()
    images = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    outputs = workflow.run(workflow.preprocess({"input": images}))
    np.testing.assert_allclose(outputs["logits"], reference(torch.from_numpy(images))[0].detach().numpy(), rtol=1e-4, atol=1e-5)
