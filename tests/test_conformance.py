"""clients/conformance/cases.json against a live conformance server (clients/conformance/serve.py,
a process of its own: plaintext, and TLS with bearer tokens), through the Python client and the
Go, TypeScript and Java clients (each language's runner, clients/LANG/conformance.sh, after
`make clients` set them up; their reports must list every case, in order, passed); and buf
breaking, shown to fail on a change that breaks the wire."""

from __future__ import annotations

import json
import os
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
        yield {**json.loads(path.read_text()), "_path": path}
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


#: What `make clients` leaves, by language: the runner cannot start without it.
_SET_UP = {"go": "clients/go/.bin/protoc-gen-go", "typescript": "clients/typescript/node_modules", "java": "clients/java/.tools"}


@pytest.mark.parametrize("language", ["go", "typescript", "java"])
def test_each_language_passes_every_case(language: str, connection: dict[str, Any], tmp_path: Path) -> None:
    """The language's own runner, through its own client (the cases run one language at a
    time: the model-management ones unload and load a model back)."""
    if not (ROOT / _SET_UP[language]).exists():
        pytest.fail(f"the {language} client is not set up: run `make clients`")
    report = tmp_path / f"{language}.json"
    environment = {**os.environ, "INFERD_CONFORMANCE": str(connection["_path"]),
                   "INFERD_CONFORMANCE_CASES": str(ROOT / "clients" / "conformance" / "cases.json"),
                   "INFERD_CONFORMANCE_REPORT": str(report)}  # fmt: skip
    done = subprocess.run([str(ROOT / "clients" / language / "conformance.sh")], env=environment,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.exists(), f"{language}: no report (exit {done.returncode}): {done.stdout[-3000:]}{done.stderr[-3000:]}"
    written = json.loads(report.read_text())
    assert written["language"] == language
    names = [case["name"] for case in load_cases()["cases"]]
    assert [result["name"] for result in written["results"]] == names
    failed = {result["name"]: result["problems"] for result in written["results"] if not result["passed"]}
    assert failed == {}
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


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
