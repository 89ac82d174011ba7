"""The Python client's runner of clients/conformance/cases.json (tests/test_conformance.py runs
it, and the other languages' runners beside it). Each case is run through ``inferd.Client``,
as a user would, and checked against its ``expect``; the result is a list of failures."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from inferd import TLS, Blob, Client, InferdError
from inferd.client import JsonBytes

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "clients" / "conformance" / "cases.json"
_INTEGERS = ("record", "offset", "retry_after_ms")


def load_cases() -> dict[str, Any]:
    return dict(json.loads(CASES.read_text()))


def _input(spec: dict[str, Any]) -> Any:
    if "json" in spec:
        return spec["json"]
    if "json_text" in spec:
        return JsonBytes(spec["json_text"].encode())
    if "text" in spec:
        return spec["text"]
    if "blob" in spec:
        return Blob(base64.b64decode(spec["blob"]["base64"]), spec["blob"]["content_type"])
    return {t["name"]: _array(t) for t in spec["tensors"]}


def _array(spec: dict[str, Any]) -> np.ndarray[Any, Any]:
    dtype = np.dtype(object) if spec["dtype"] == "string" else np.dtype(spec["dtype"])
    return np.array(spec["values"], dtype=dtype).reshape(spec["shape"])


def _close(got: Any, want: Any, tolerance: float, where: str) -> list[str]:
    """Where ``got`` differs from ``want`` (floats within ``tolerance``, relative or absolute)."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return [f"{where}: expected keys {sorted(want)}, got {got!r}"[:300]]
        return [line for key in want for line in _close(got[key], want[key], tolerance, f"{where}.{key}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: expected {len(want)} items, got {got!r}"[:300]]
        return [line for i, (g, w) in enumerate(zip(got, want)) for line in _close(g, w, tolerance, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance):
            return []
    elif type(got) is type(want) and got == want:
        return []
    elif isinstance(want, int) and not isinstance(want, bool) and isinstance(got, float) and got == want:
        return []  # JSON's 1.0 is 1
    return [f"{where}: expected {want!r}, got {got!r}"[:300]]


def _output(got: Any, want: dict[str, Any], tolerance: float) -> list[str]:
    if "json" in want:
        return _close(got, want["json"], tolerance, "output")
    if "text" in want:
        return _close(got, want["text"], 0, "output")
    if "text_length" in want:
        return [] if isinstance(got, str) and len(got) == want["text_length"] else [f"output: {len(got)} characters"]
    if "blob" in want:
        if not isinstance(got, Blob):
            return [f"output: expected a blob, got {type(got).__name__}"]
        expected = (base64.b64decode(want["blob"]["base64"]), want["blob"]["content_type"])
        return [] if (got.data, got.content_type) == expected else [f"output: blob {got!r}"[:300]]
    problems = []
    names = [t["name"] for t in want["tensors"]]
    if not isinstance(got, dict) or sorted(got) != sorted(names):
        return [f"output: expected tensors {names}, got {got!r}"[:300]]
    for spec in want["tensors"]:
        array = got[spec["name"]]
        dtype = "string" if array.dtype == object else str(array.dtype)
        if dtype != spec["dtype"] or list(array.shape) != spec["shape"]:
            problems.append(f"tensor {spec['name']}: {dtype}{list(array.shape)}, expected {spec['dtype']}{spec['shape']}")
            continue
        values = [v.item() if hasattr(v, "item") else v for v in array.reshape(-1)]
        want_values = [float(v) if spec["dtype"].startswith("float") else v for v in spec["values"]]
        problems += _close(values, want_values, tolerance, f"tensor {spec['name']}")
    return problems


def _error(error: InferdError, want: dict[str, Any]) -> list[str]:
    problems = []
    if error.code != want["code"]:
        problems.append(f"code: expected {want['code']}, got {error.code} ({error.message})")
    spec = want.get("error", {})
    if "reason" in spec and type(error).__name__ != spec["reason"]:
        problems.append(f"reason: expected {spec['reason']}, got {type(error).__name__}")
    problems += [f"message {error.message!r} lacks {part!r}" for part in spec.get("message_contains", []) if part not in error.message]
    problems += [f"message {error.message!r} has {part!r}" for part in spec.get("message_excludes", []) if part in error.message]
    for key, value in spec.get("details", {}).items():
        if error.details.get(key) != value:
            problems.append(f"details[{key!r}]: expected {value!r}, got {error.details.get(key)!r}")
    return problems


def run_case(case: dict[str, Any], connection: dict[str, Any], tokens: dict[str, str]) -> list[str]:
    """What is wrong with ``case``'s answer (nothing: it passed)."""
    secure = case.get("server", "plain") == "secure"
    tls: TLS | bool = False
    if secure and not case.get("plaintext"):
        tls = TLS(ca=connection["ca"], server_name=connection["server_name"])
    name = case.get("token")
    token = {**connection["tokens"], **tokens}[name] if name else None
    timeout = case["timeout_ms"] / 1000 if "timeout_ms" in case else 30.0
    want = case["expect"]
    address = connection["secure" if secure else "plain"]
    with Client(address, tls=tls, token=token, timeout=timeout, max_message_bytes=connection["max_message_bytes"]) as client:
        try:
            problems = _call(client, case, want)
        except InferdError as error:
            return _error(error, want)
    if want["code"] != "OK":
        problems.append(f"expected {want['code']}, the call succeeded")
    return problems


def _call(client: Client, case: dict[str, Any], want: dict[str, Any]) -> list[str]:
    call, model = case["call"], case.get("model", "")
    tolerance = float(want.get("tolerance", 0))
    if call == "health":
        status = client.health(case.get("service", ""))
        return [] if status == want["health"] else [f"health: {status}"]
    if call in ("setup", "load"):
        setup_ms = getattr(client, call)(model)
        return [] if setup_ms >= 0 else [f"setup_ms {setup_ms}"]
    if call == "unload":
        client.unload(model)
        return []
    if call == "models":
        found = {info.name: info for info in client.models()}
        problems = []
        for name, fields in want["models"].items():
            if name not in found:
                problems.append(f"model {name} not listed")
                continue
            info = found[name]
            seen = {"state": info.state.upper(), "input_format": info.input_format, "unary": info.unary,
                    "streaming": info.streaming, "batching": info.batching is not None}  # fmt: skip
            problems += [f"{name}.{key}: {seen[key]!r}, expected {value!r}" for key, value in fields.items() if seen[key] != value]
        return problems
    inputs, parameters, id = _input(case["input"]), case.get("parameters"), case.get("id", "")
    if call == "infer":
        result = client.infer(model, inputs, parameters=parameters, id=id)
        problems = [] if result.id == want.get("id", id) else [f"id: {result.id!r}"]
        return problems + _output(result.output, want["output"], tolerance) if "output" in want else problems
    chunks, final = [], False
    stream = client.stream(model, inputs, parameters=parameters, id=id)
    for chunk in stream:
        if chunk.id != want.get("id", id) or chunk.index != len(chunks):
            return [f"chunk {len(chunks)}: id {chunk.id!r}, index {chunk.index}"]
        if chunk.output is not None:
            chunks.append(chunk.output)
        final = chunk.final
        if len(chunks) == case.get("cancel_after"):
            stream.close()  # cancels the call
            break
    problems = [] if final or "cancel_after" in case else ["no final message"]
    return problems + _close(chunks, [c["text"] for c in want.get("chunks", [])], 0, "chunks")
