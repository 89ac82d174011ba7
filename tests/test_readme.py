"""The README's quick start, run against `inferd serve` of the default service, so that it stays true.

The calls are taken from README.md itself: the fenced block after each `<!-- quickstart:NAME -->`
marker. Only the address is changed (to the test server's), and what the server answers is
compared with the outputs the README shows: strings and structure exactly, numbers to a
tolerance, stage timings by their stage names only (their milliseconds differ every run). The
minimal configuration (`<!-- readme:configuration -->`) must load.
"""

from __future__ import annotations

import ast
import base64
import json
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import ROOT, SERVICE_CONFIG
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inferd.config import load_config
from test_cli import free_port, stop_serve

README = ROOT / "README.md"
#: The address the README's calls use: the default service's (`make serve`).
README_ADDRESS = "127.0.0.1:50051"
#: Where `make buf` installs buf.
BUF_DIRECTORY = ROOT / ".tools" / "node_modules" / ".bin"


def readme_block(name: str, kind: str = "quickstart") -> str:
    """The fenced code block right after `<!-- KIND:NAME -->` in README.md."""
    pattern = rf"^<!-- {kind}:{re.escape(name)} -->\n```[\w-]*\n(.*?)^```$"
    match = re.search(pattern, README.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no fenced block after <!-- {kind}:{name} -->"
    return match.group(1)


def with_address(code: str, address: str) -> str:
    assert README_ADDRESS in code, f"the README's call does not use {README_ADDRESS}"
    return code.replace(README_ADDRESS, address)


def assert_close(actual: Any, expected: Any, where: str = "output") -> None:
    """Equal structure, keys and strings; numbers equal to a relative 1e-5 (float32 results)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        assert actual is expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        assert math.isclose(actual, expected, rel_tol=1e-5, abs_tol=1e-9), f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not a mapping like {expected!r}"
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list like {expected!r}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, the README shows {len(expected)}"
        for index, (got, shown) in enumerate(zip(actual, expected)):
            assert_close(got, shown, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def infer_response_parts(response: dict[str, Any]) -> tuple[dict[str, Any], list[str], Any]:
    """An `InferResponse` as buf prints it: (the other fields, the stage names, output.json decoded)."""
    rest = dict(response)
    timings = rest.pop("timings")
    assert all(isinstance(timing["ms"], (int, float)) for timing in timings), timings
    output = rest.pop("output")
    assert list(output) == ["json"], f"expected a json output, got {list(output)}"
    return rest, [timing["stage"] for timing in timings], json.loads(base64.b64decode(output["json"]))


def assert_infer_responses_match(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    actual_rest, actual_stages, actual_output = infer_response_parts(actual)
    expected_rest, expected_stages, expected_output = infer_response_parts(expected)
    assert actual_rest == expected_rest
    assert actual_stages == expected_stages, "the stages timed differ from the README's"
    assert_close(actual_output, expected_output, "output.json")


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """`inferd serve` of service/inferd.toml (what `make serve` runs), once SERVING."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "inferd", "serve", "--config", str(SERVICE_CONFIG), "--address", address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(900):  # the eager models load first (torch, the chat model): up to 90 s
                assert process.poll() is None, f"inferd serve exited:\n{stop_serve(process)}"
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError:
                    status = None
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                threading.Event().wait(0.1)
            else:
                pytest.fail(f"inferd serve was not SERVING after 90 s:\n{stop_serve(process)}")
        yield address
    finally:
        stop_serve(process)


def test_python_quick_start(address: str) -> None:
    code = with_address(readme_block("python"), address)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert_close(ast.literal_eval(result.stdout.strip()), ast.literal_eval(readme_block("python-output")))


def run_readme_shell(name: str, address: str, timeout: float) -> Any:
    """The README's `buf curl` block NAME against ``address``: the JSON it prints."""
    if not (BUF_DIRECTORY / "buf").exists():
        pytest.fail("buf is not installed: run `make buf` (it installs npm's @bufbuild/buf into .tools/)")
    script = "set -euo pipefail\n" + with_address(readme_block(name), address)
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "PATH": f"{BUF_DIRECTORY}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_buf_curl_quick_start(address: str) -> None:
    answer = run_readme_shell("shell", address, 60)
    shown = json.loads(readme_block("shell-output"))
    assert_infer_responses_match(answer, shown)
    # The decoded output the README shows beside it is the same answer.
    assert_close(infer_response_parts(answer)[2], json.loads(readme_block("shell-output-json")), "output.json")


def graph_output_shown() -> list[Any]:
    return [ast.literal_eval(line) for line in readme_block("graph-python-output").splitlines() if line.strip()]


def test_graph_quick_start(address: str) -> None:
    """The stories graph: seeded generations, so the same texts and scores as the README's."""
    code = with_address(readme_block("graph-python"), address)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    printed = [ast.literal_eval(line) for line in result.stdout.splitlines() if line.strip()]
    assert_close(printed, graph_output_shown())


def test_graph_buf_curl(address: str) -> None:
    answer = run_readme_shell("graph-shell", address, 300)
    assert answer["model"] == "stories"
    assert {"node:gen1", "node:gen2", "node:gen3", "node:scores", "node:scored"} <= {t["stage"] for t in answer["timings"]}
    assert_close(json.loads(base64.b64decode(answer["output"]["json"])), graph_output_shown(), "output.json")


def test_minimal_configuration_is_valid(tmp_path: Path) -> None:
    """The README's minimal configuration loads (unknown keys would be refused)."""
    path = tmp_path / "inferd.toml"
    path.write_text(readme_block("configuration", kind="readme"))
    config = load_config(path)
    assert config.server.address == README_ADDRESS
    assert list(config.models) == ["churn"]
    assert config.models["churn"].batching is not None


def test_a_changed_output_fails_the_comparison() -> None:
    """The comparisons above are not vacuous: a README whose outputs were edited would fail them."""
    shown = ast.literal_eval(readme_block("python-output"))
    edited = json.loads(json.dumps(shown))
    edited[0]["probabilities"][0] += 1e-3
    with pytest.raises(AssertionError):
        assert_close(edited, shown)
    edited = json.loads(json.dumps(shown))
    edited[0]["label"] = "class_1"
    with pytest.raises(AssertionError):
        assert_close(edited, shown)

    response = json.loads(readme_block("shell-output"))
    rest, stages, output = infer_response_parts(response)
    output[0]["probabilities"][1] *= 1.01
    edited_response = {**rest, "output": {"json": base64.b64encode(json.dumps(output).encode()).decode()},
                       "timings": [{"stage": stage, "ms": 1.0} for stage in stages]}  # fmt: skip
    with pytest.raises(AssertionError):
        assert_infer_responses_match(edited_response, response)
    # Timings are not compared by value: the same answer with other milliseconds matches.
    same = {**response, "timings": [{"stage": stage, "ms": 123.0} for stage in stages]}
    assert_infer_responses_match(same, response)
