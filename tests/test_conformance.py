"""clients/conformance/cases.json against a live conformance server (clients/conformance/serve.py,
a process of its own: plaintext, and TLS with bearer tokens), through the Python client; and
buf breaking, shown to fail on a change that breaks the wire."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_runner import ROOT, load_cases, run_case

BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"


@pytest.fixture(scope="module")
def connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("conformance") / "connection.json"
    server = subprocess.Popen([sys.executable, str(ROOT / "clients" / "conformance" / "serve.py"), str(path)])
    try:
        deadline = time.monotonic() + 120
        while not path.exists():  # serve.py writes the file whole once both servers serve
            assert server.poll() is None, f"the conformance server exited with {server.returncode}"
            assert time.monotonic() < deadline, "the conformance server did not start in 120 s"
            time.sleep(0.1)
        yield dict(json.loads(path.read_text()))
    finally:
        server.terminate()
        server.wait(30)


def test_the_python_client_passes_every_case(connection: dict[str, Any]) -> None:
    cases = load_cases()
    failures = {}
    for case in cases["cases"]:  # in order: the model-management cases depend on it
        problems = run_case(case, connection, cases["tokens"])
        if problems:
            failures[case["name"]] = problems
    assert failures == {}
    assert len(cases["cases"]) >= 40


def test_case_names_are_unique_and_every_call_and_payload_is_covered() -> None:
    cases = load_cases()["cases"]
    assert len({case["name"] for case in cases}) == len(cases)
    assert {case["call"] for case in cases} == {"health", "models", "setup", "load", "unload", "infer", "stream"}
    kinds = {kind for case in cases for kind in case.get("input", {})}
    assert kinds == {"json", "json_text", "text", "blob", "tensors"}
    codes = {case["expect"]["code"] for case in cases}
    assert codes >= {"OK", "NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED",
                     "DEADLINE_EXCEEDED", "UNAUTHENTICATED", "PERMISSION_DENIED", "UNAVAILABLE",
                     "UNIMPLEMENTED", "INTERNAL"}  # fmt: skip


def test_buf_breaking_fails_on_a_renumbered_field(tmp_path: Path) -> None:
    """The check `make buf-check` runs, on a copy of proto/ with one field renumbered."""
    if not BUF.exists():
        pytest.fail("buf is not installed: run `make buf`")
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy)
    config = (ROOT / "buf.yaml").read_text().replace("- path: proto", "- path: .").replace("- proto/inference", "- inference")
    (copy / "buf.yaml").write_text(config)
    source = copy / "inferd" / "v1" / "inference.proto"
    assert "  bool final = 6;" in source.read_text()
    source.write_text(source.read_text().replace("  bool final = 6;", "  bool final = 16;"))
    against = ["--against", str(ROOT), "--against-config", str(ROOT / "buf.yaml")]
    broken = subprocess.run([str(BUF), "breaking", *against], cwd=copy, capture_output=True, text=True)
    assert broken.returncode != 0 and 'field "6" with name "final"' in broken.stdout
    source.write_text(source.read_text().replace("  bool final = 16;", "  bool final = 6;"))
    intact = subprocess.run([str(BUF), "breaking", *against], cwd=copy, capture_output=True, text=True)
    assert intact.returncode == 0, intact.stdout + intact.stderr
