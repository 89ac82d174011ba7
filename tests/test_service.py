"""The default service end to end: Setup, Infer, Stream and ListModels for each model, with
outputs checked against running the same model directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.datasets import load_digits, load_wine

from conftest import RunningServer

from inferd.client import Client, JsonBytes

MODELS = Path(__file__).resolve().parents[1] / "service" / "models"
WINE_FIELDS = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280_od315", "proline",
]  # fmt: skip


def wine_records(count: int) -> tuple[list[dict[str, float]], np.ndarray]:
    data = load_wine().data[:: max(1, 178 // count)][:count]
    return [dict(zip(WINE_FIELDS, map(float, row))) for row in data], data.astype(np.float32)


def test_models_lists_the_default_service(client: Client) -> None:
    models = {model.name: model for model in client.models()}
    assert models["wine"].workflow == "onnx" and models["wine"].input_format == "tensor"
    assert models["digits"].workflow == "torch" and models["digits"].unary
    assert models["echo"].streaming and models["echo"].unary
    for name in ("wine", "digits", "echo"):
        assert models[name].state == "ready", models[name].reason
        assert models[name].setup_mode == "eager"
        assert models[name].stages["setup"]["count"] == 1


def test_models_report_the_tensors_their_runs_take_and_give(client: Client) -> None:
    models = {model.name: model for model in client.models()}
    # ONNX: read from the session (skl2onnx names a batch of any size; labels are strings).
    assert models["wine"].inputs == [{"name": "input", "dtype": "float32", "shape": [None, 13]}]
    assert models["wine"].outputs == [
        {"name": "label", "dtype": "string", "shape": [None]},
        {"name": "probabilities", "dtype": "float32", "shape": [None, 3]},
    ]
    # torch: as the configuration declares them (outputs by name only).
    assert models["digits"].inputs == [{"name": "input", "dtype": "float32", "shape": [None, 1, 8, 8]}]
    assert [(t["name"], t["dtype"], t["shape"]) for t in models["digits"].outputs] == [
        ("logits", None, None),
        ("label", None, None),
    ]
    assert (models["echo"].inputs, models["echo"].outputs) == ([], [])  # declares none


def test_setup_of_a_ready_model_is_idempotent(client: Client) -> None:
    before = client.models()
    setup_ms = client.setup("wine")
    assert setup_ms == next(m for m in before if m.name == "wine").stages["setup"]["last_ms"]
    after = next(m for m in client.models() if m.name == "wine")
    assert after.stages["setup"]["count"] == 1


def test_wine_records_match_onnxruntime(client: Client) -> None:
    records, matrix = wine_records(20)
    result = client.infer("wine", records, id="wine-1")
    session = ort.InferenceSession(str(MODELS / "wine.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": matrix})
    assert result.id == "wine-1" and result.model == "wine"
    assert [row["label"] for row in result.output] == list(labels)
    np.testing.assert_allclose([row["probabilities"] for row in result.output], probabilities, rtol=1e-6)
    assert list(result.timings) == ["adapt", "preprocess", "run", "total"]  # inline, served in one go
    assert all(ms >= 0 for ms in result.timings.values())


def test_wine_accepts_one_record_and_raw_json(client: Client) -> None:
    records, _ = wine_records(1)
    one = client.infer("wine", records[0]).output
    raw = client.infer("wine", JsonBytes(b"[" + __import__("json").dumps(records[0]).encode() + b"]")).output
    assert one == raw and len(one) == 1


def test_wine_accepts_tensors_too(client: Client) -> None:
    _, matrix = wine_records(5)
    output = client.infer("wine", {"input": matrix}).output
    assert output["probabilities"].shape == (5, 3)
    assert output["label"].dtype == object and set(output["label"]) <= {"class_0", "class_1", "class_2"}


def test_digits_matches_torch(client: Client) -> None:
    digits = load_digits()
    images = digits.images[:64].astype(np.float32)[:, None]
    result = client.infer("digits", {"input": images})
    model = torch.export.load(str(MODELS / "digits.pt2")).module()
    with torch.inference_mode():
        logits, labels = model(torch.from_numpy(images))
    np.testing.assert_allclose(result.output["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.output["label"], labels.numpy())
    assert result.output["label"].dtype == np.int64
    # The model is worth serving: it reads these digits.
    assert (result.output["label"] == digits.target[:64]).mean() > 0.9


def test_echo_streams_word_by_word(client: Client) -> None:
    chunks = list(client.stream("echo", "the quick  brown fox", id="s-1"))
    assert [chunk.output for chunk in chunks[:-1]] == ["the", " quick", "  brown", " fox"]
    assert [chunk.index for chunk in chunks] == [0, 1, 2, 3, 4]
    final = chunks[-1]
    assert final.final and final.output is None and not any(chunk.final for chunk in chunks[:-1])
    assert list(final.timings) == ["adapt", "preprocess", "stream", "total"]


def test_echo_infer_and_parameters(client: Client) -> None:
    assert client.infer("echo", "hello world").output == "hello world"
    assert client.infer("echo", "hello world", parameters={"uppercase": True}).output == "HELLO WORLD"
    chunks = client.stream("echo", {"text": "a b"}, parameters={"uppercase": True, "delay_ms": 1})
    assert [chunk.output for chunk in chunks if not chunk.final] == ["A", " B"]


def test_stage_timings_accumulate_in_list_models(client: Client) -> None:
    before = next(m for m in client.models() if m.name == "echo").stages.get("total", {}).get("count", 0)
    for _ in range(3):
        client.infer("echo", "x")
    after = next(m for m in client.models() if m.name == "echo").stages
    assert after["total"]["count"] == before + 3
    assert after["total"]["max_ms"] >= after["total"]["mean_ms"] > 0


@pytest.mark.parametrize("model", ["wine", "digits", "echo"])
def test_health_per_model(client: Client, model: str) -> None:
    assert client.health(model) == "SERVING"


def test_async_client(server: RunningServer) -> None:
    from inferd import ModelNotFound
    from inferd.client import AsyncClient

    records, _ = wine_records(3)

    async def calls() -> dict[str, object]:
        async with AsyncClient(server.address, timeout=60) as client:
            results: dict[str, object] = {
                "health": await client.health(),
                "setup": await client.setup("echo"),
                "models": [model.name for model in await client.models()],
                "wine": (await client.infer("wine", records, id="a-1")),
                "chunks": [chunk async for chunk in client.stream("echo", "async words")],
            }
            try:
                await client.infer("missing", "x")
            except ModelNotFound as error:
                results["error"] = error
            return results

    results = server.call(calls())  # on the server's loop thread: one loop for every grpc.aio object
    assert results["health"] == "SERVING" and isinstance(results["setup"], float)
    assert {"wine", "digits", "echo"} <= set(results["models"])  # type: ignore[arg-type]
    wine = results["wine"]
    assert wine.id == "a-1" and wine.output == Client(server.address).infer("wine", records).output  # type: ignore[attr-defined]
    chunks = results["chunks"]
    assert [c.output for c in chunks][:-1] == ["async", " words"] and chunks[-1].final  # type: ignore[attr-defined]
    assert isinstance(results.get("error"), ModelNotFound)
