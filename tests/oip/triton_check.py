"""Drives an inferd server with tritonclient (sync or aio), in tritonclient's own venv
(.tools/venv-oip: it needs protobuf < 7). Prints one JSON object of what it saw; the test
(tests/test_oip_clients.py) checks it against what the models give in process.

    python triton_check.py ADDRESS sync|aio SEED
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np

DTYPES = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "BOOL": np.bool_, "BYTES": object,
}  # fmt: skip
WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


def tensors(seed: int) -> dict[str, tuple[np.ndarray, str]]:
    """One tensor of every datatype, of random shapes (a size 0 among them) and values."""
    rng = np.random.default_rng(seed)
    out = {}
    for index, (name, dtype) in enumerate(DTYPES.items()):
        shape = tuple(int(size) for size in rng.integers(0 if index == 3 else 1, 4, size=int(rng.integers(1, 4))))
        count = int(np.prod(shape))
        if name == "BYTES":
            array = np.array([bytes(rng.integers(0, 256, size=int(rng.integers(0, 9)), dtype=np.uint8)) for _ in range(count)], dtype=object)
        elif name == "BOOL":
            array = rng.integers(0, 2, size=count).astype(np.bool_)
        elif name.startswith("FP"):
            array = (rng.standard_normal(count) * 100).astype(dtype)
        else:
            info = np.iinfo(dtype)
            array = rng.integers(info.min, info.max, size=count, dtype=dtype, endpoint=True)
        out[f"t{index}_{name.lower()}"] = (array.reshape(shape), name)
    return out


def run_sync(address: str, seed: int) -> dict:
    import tritonclient.grpc as g

    client = g.InferenceServerClient(address)
    seen: dict = {
        "live": client.is_server_live(), "ready": client.is_server_ready(), "wine_ready": client.is_model_ready("wine"),
        "extensions": list(client.get_server_metadata().extensions),
        "wine_metadata": _metadata(client.get_model_metadata("wine")),
        "digits_config": _config(client.get_model_config("digits").config),
        "smollm2_decoupled": client.get_model_config("smollm2").config.model_transaction_policy.decoupled,
    }
    given = tensors(seed)
    inputs = []
    for name, (array, datatype) in given.items():
        tensor = g.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer("tensor-echo", inputs, request_id=f"seed-{seed}")
    seen["id"] = result.get_response().id
    seen["mismatches"] = _mismatches(result, given)
    subset = list(given)[::3]
    result = client.infer("tensor-echo", inputs, outputs=[g.InferRequestedOutput(name) for name in subset])
    seen["subset_asked"], seen["subset_got"] = subset, [output.name for output in result.get_response().outputs]
    wine = g.InferInput("input", [1, 13], "FP32")
    wine.set_data_from_numpy(np.array([WINE], dtype=np.float32))
    seen["wine_probabilities"] = client.infer("wine", [wine]).as_numpy("probabilities").tolist()
    records = g.InferInput("records", [1], "BYTES")
    fields = seen["wine_fields"] = sys.argv[4].split(",")
    records.set_data_from_numpy(np.array([json.dumps(dict(zip(fields, WINE))).encode()], dtype=object))
    seen["wine_from_records"] = json.loads(client.infer("wine", [records]).as_numpy("output")[0])
    seen["stream"] = _stream(client, g)
    seen["index_before"] = _state(client, "unloadable")
    client.load_model("unloadable")
    seen["index_loaded"] = _state(client, "unloadable")
    client.unload_model("unloadable")
    seen["index_unloaded"] = _state(client, "unloadable")
    try:
        client.infer("nope", inputs)
    except g.InferenceServerException as error:
        seen["unknown_model"] = [error.status(), error.message()]
    client.close()
    return seen


def _metadata(metadata) -> dict:
    return {"platform": metadata.platform, "inputs": [[t.name, t.datatype, list(t.shape)] for t in metadata.inputs]}


def _config(config) -> dict:
    return {"max_batch_size": config.max_batch_size, "inputs": [[t.name, list(t.dims)] for t in config.input]}


def _mismatches(result, given: dict) -> list[str]:
    wrong = []
    for name, (array, datatype) in given.items():
        got = result.as_numpy(name)
        if got is None or got.shape != array.shape or (datatype != "BYTES" and got.dtype != array.dtype):
            wrong.append(f"{name}: {None if got is None else (got.dtype, got.shape)} for {(array.dtype, array.shape)}")
        elif not np.array_equal(got, array):
            wrong.append(f"{name}: values differ")
    return wrong


def _stream(client, g) -> list:
    """The chat model's tokens through start_stream, then the empty final response."""
    import queue

    responses: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    prompt = g.InferInput("text_input", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([b"Say hello."], dtype=object))
    client.async_stream_infer(
        "smollm2", [prompt], request_id="chat", enable_empty_final_response=True,
        parameters={"max_new_tokens": 8, "temperature": 0.0},
    )  # fmt: skip
    seen = []
    while True:
        result, error = responses.get(timeout=120)
        if error is not None:
            seen.append({"error": str(error)})
            break
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        text = result.as_numpy("output")[0].decode() if response.outputs else None
        seen.append({"text": text, "final": final, "id": response.id})
        if final:
            break
    client.stop_stream()
    return seen


def _state(client, name: str) -> str:
    index = client.get_model_repository_index()
    return next(model.state for model in index.models if model.name == name)


async def run_aio(address: str, seed: int) -> dict:
    import tritonclient.grpc.aio as ga

    client = ga.InferenceServerClient(address)
    given = tensors(seed)
    inputs = []
    for name, (array, datatype) in given.items():
        tensor = ga.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    seen = {"live": await client.is_server_live(), "ready": await client.is_model_ready("tensor-echo")}
    results = await asyncio.gather(*(client.infer("tensor-echo", inputs, request_id=str(i)) for i in range(8)))
    seen["ids"] = [result.get_response().id for result in results]
    seen["mismatches"] = [wrong for result in results for wrong in _mismatches(result, given)]
    prompt = ga.InferInput("text", [1], "BYTES")
    prompt.set_data_from_numpy(np.array([b"one two three"], dtype=object))

    async def requests():
        # (the aio client cannot ask for the empty final response: the stream ends when the
        # server has answered every request, after this iterator ends)
        yield {"model_name": "echo", "inputs": [prompt], "request_id": "echo"}

    chunks = []
    async for result, error in client.stream_infer(requests()):
        if error is not None:
            chunks.append({"error": str(error)})
            break
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        chunks.append({"text": result.as_numpy("output")[0].decode() if response.outputs else None, "final": final})
    seen["stream"] = chunks
    await client.close()
    return seen


if __name__ == "__main__":
    address, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(run_sync(address, seed) if mode == "sync" else asyncio.run(run_aio(address, seed))))
