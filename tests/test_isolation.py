"""Models isolated in worker processes (isolation = "process"), through a real server and the
Python client: a model that segfaults, one that leaks past max_rss_mb, one that hangs, and a
worker killed from outside, each beside healthy models that keep answering throughout;
batching, streaming with cancel and several workers across the process boundary."""

from __future__ import annotations

import mmap
import os
import random
import signal
import threading
import tomllib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, SERVICE_CONFIG, RunningServer

from inferd.config import ServiceConfig
from inferd.errors import DeadlineExceeded, Unavailable
from inferd.isolation.process import _Frames
from inferd.isolation.wire import FOLDER, FRAME, HANDOVER, Arena, Mapped, pack, segment_of, unpack

CRASHY = "workflows_for_tests:Crashy"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningServer]:
    config = ServiceConfig.model_validate({"base_dir": str(ROOT / "service"), "models": {
        "crashy": {"workflow": CRASHY, "isolation": "process"},
        # Lazy: each starts its workers at its first request, so the server starts sooner.
        "leaky": {"workflow": CRASHY, "isolation": "process", "max_rss_mb": 300, "setup": "lazy"},
        "pair": {"workflow": CRASHY, "isolation": "process", "workers": 2, "setup": "lazy"},
        "wine": {"workflow": "onnx", "path": "models/wine.onnx", "isolation": "process"},
        "digits": {"workflow": "torch", "path": "models/digits.pt2", "isolation": "process", "setup": "lazy",
                   "batching": {"max_batch_size": 64, "max_delay_ms": 20},
                   "options": {"inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}],
                               "outputs": ["logits", "label"]}},
        "echo": {"workflow": "echo"},  # in the server's own process
        # The default service's smollm2 table as it ships (isolated, at a lower priority).
        "smollm2": {**tomllib.loads(SERVICE_CONFIG.read_text(encoding="utf-8"))["models"]["smollm2"], "setup": "lazy"},
    }}).with_server(metrics={"address": "127.0.0.1:0"})  # fmt: skip
    server = RunningServer(config)
    yield server
    server.stop()


def until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Polls ``check`` until it holds (a worker's restart takes a process start and a setup)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {seconds} s"
        time.sleep(0.02)


class Healthy:
    """Calls wine (isolated) and echo (in process) from a thread until stopped; counts what failed."""

    def __init__(self, running: RunningServer) -> None:
        self._running = running
        self._stop = threading.Event()
        self.calls = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        wine = {"input": np.ones((1, 13), np.float32)}
        with self._running.client() as client:
            while not self._stop.is_set():
                try:
                    assert client.infer("echo", f"call {self.calls}").output == f"call {self.calls}"
                    assert client.infer("wine", wine).output["probabilities"].shape == (1, 3)
                    self.calls += 1
                except Exception as error:  # noqa: BLE001 -- every failure is counted and shown
                    self.failures.append(repr(error))

    def __enter__(self) -> Healthy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_segfault_fails_only_its_own_call_and_the_worker_comes_back(running: RunningServer) -> None:
    with running.client() as client, Healthy(running) as healthy:
        answer = client.infer("crashy", {"a": 1})
        first = answer.output["pid"]
        assert first != os.getpid()  # it ran in a worker process
        assert {"run", "worker:run", "total"} <= set(answer.timings)  # its stages timed there
        pids = {first}
        for round_ in range(3):
            with pytest.raises(Unavailable) as died:
                client.infer("crashy", {"crash": True})
            assert "'crashy'" in str(died.value) and "SIGSEGV" in str(died.value)
            until(lambda: client.health("crashy") == "SERVING", "the worker's restart")
            pids.add(client.infer("crashy", {"a": round_}).output["pid"])
        until(lambda: healthy.calls >= 5 or bool(healthy.failures), "healthy calls")
    assert len(pids) == 4  # three deaths, three new workers
    # The dead workers' shared memory went with them (the server removed what they left).
    dead = pids - {max(pids, key=lambda pid: Path(f"/proc/{pid}").exists())}
    assert not [name for name in os.listdir(FOLDER) for pid in dead if name.startswith(f"inferd-{pid}-")]
    assert healthy.failures == []


def test_a_worker_killed_from_outside_fails_its_calls_in_flight(running: RunningServer, tmp_path: Any) -> None:
    with running.client() as client, Healthy(running) as healthy:
        pid = client.infer("crashy", {"a": 1}).output["pid"]
        failed: list[BaseException] = []

        def hung_call() -> None:
            with running.client() as other:
                try:
                    other.infer("crashy", {"hang": 30, "mark": str(tmp_path / "in-run")})
                except BaseException as error:  # noqa: BLE001
                    failed.append(error)

        caller = threading.Thread(target=hung_call)
        caller.start()
        until((tmp_path / "in-run").exists, "the call in flight")
        os.kill(pid, signal.SIGKILL)
        caller.join(30)
        assert len(failed) == 1 and isinstance(failed[0], Unavailable)
        assert "SIGKILL" in str(failed[0]) and "out of memory?" in str(failed[0])
        until(lambda: client.health("crashy") == "SERVING", "the worker's restart")
        assert client.infer("crashy", {"a": 2}).output["pid"] != pid
    assert healthy.failures == []


def test_a_hung_call_meets_its_deadline_and_the_model_answers_others(running: RunningServer) -> None:
    with running.client() as client, Healthy(running) as healthy:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.infer("crashy", {"hang": 20}, timeout=0.5)
        assert time.monotonic() - started < 10
        assert client.infer("crashy", {"a": 3}).output["echo"] == {"a": 3}  # another thread of it
    assert healthy.failures == []


def test_a_worker_past_max_rss_mb_is_replaced_without_failing_a_call(running: RunningServer) -> None:
    with running.client() as client, Healthy(running) as healthy:
        pid = client.infer("leaky", {"a": 0}).output["pid"]
        seen = set()
        for _ in range(40):  # 40 MiB a call: past 300 MiB within a few calls
            seen.add(client.infer("leaky", {"leak": 40}).output["pid"])
            if len(seen) > 1:
                break
        until(lambda: client.infer("leaky", {"a": 1}).output["pid"] != pid, "the worker's replacement")
    assert healthy.failures == []


def test_batches_form_across_the_process_boundary(running: RunningServer) -> None:
    from sklearn.datasets import load_digits

    images = load_digits().images[:16].astype(np.float32)
    with running.client() as client:
        before = next(info for info in client.models() if info.name == "digits").batching
        from concurrent.futures import ThreadPoolExecutor

        def one(image: np.ndarray) -> int:
            with running.client() as each:
                return int(each.infer("digits", {"input": image.reshape(1, 1, 8, 8)}).output["label"][0])

        with ThreadPoolExecutor(16) as pool:
            labels = list(pool.map(one, images))
        after = next(info for info in client.models() if info.name == "digits").batching
        alone = [one(image) for image in images]  # one at a time: each its own batch
    assert before is not None and after is not None
    assert int(after["rows"]) - int(before["rows"]) == 16
    assert int(after["batches"]) - int(before["batches"]) < 16  # some calls ran as one batch
    assert labels == alone  # each row's answer went back to its own request
    assert sum(a == b for a, b in zip(labels, load_digits().target[:16])) >= 12


def test_streams_cross_and_a_cancel_stops_the_workers_generator(running: RunningServer, tmp_path: Any) -> None:
    with running.client() as client:
        chunks = [chunk.output for chunk in client.stream("crashy", {"chunks": 4}) if not chunk.final]
        assert chunks == ["chunk 0", "chunk 1", "chunk 2", "chunk 3"]
        started = time.monotonic()
        mark = tmp_path / "sent"
        stream = client.stream("crashy", {"chunks": 1000, "gap": 0.05, "mark": str(mark)})
        first = next(stream)
        assert first.output == "chunk 0"
        stream.close()  # cancels the call
        until(mark.exists, "the worker's generator closing")
        assert int(mark.read_text()) < 50  # it stopped within a chunk or so, not after 1000
        assert client.infer("crashy", {"a": 4}).output["echo"] == {"a": 4}
        assert time.monotonic() - started < 20


def test_several_workers_share_the_calls(running: RunningServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        with running.client() as each:
            return int(each.infer("pair", {"hang": 0.2, "i": i}).output["pid"])

    with ThreadPoolExecutor(8) as pool:
        pids = set(pool.map(one, range(16)))
    assert len(pids) == 2


def test_an_isolated_model_taking_parameters_tears_down_and_its_worker_exits(
    running: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    # echo's preprocess takes the request's parameters, so the isolated whole pass does; its
    # teardown takes none, and closing the engine must call it so and stop the worker.
    from inferd.adapters import Payload
    from inferd.engine import Engine

    config = ServiceConfig.model_validate({"models": {"echo": {"workflow": "echo", "isolation": "process"}}})
    engine = Engine(config)
    running.call(engine.start())
    try:
        result = running.call(engine.infer("echo", Payload("text", "hello"), {"delay_ms": 0}))
        assert result.output == "hello"
        pids = [worker.pid for worker in engine.repository.get("echo").stages.workflow.workers]
    finally:
        running.call(engine.close())
    assert not [record for record in caplog.records if "teardown failed" in record.getMessage()]
    for pid in pids:
        until(lambda: _gone(pid), f"worker {pid} exiting", 30)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (gone, or a zombie not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_default_services_isolated_smollm2_streams_as_in_process(running: RunningServer, server: RunningServer) -> None:
    assert running.server.engine.config.models["smollm2"].isolation == "process"  # as it ships
    greedy = {"max_new_tokens": 6}
    with running.client(timeout=300) as isolated, server.client(timeout=300) as in_process:
        chunks = list(isolated.stream("smollm2", "Name a colour.", parameters=greedy))
        assert chunks[-1].final and chunks[-1].output is None
        tokens = [chunk.output for chunk in chunks[:-1]]
        assert tokens and "".join(tokens) == in_process.infer("smollm2", "Name a colour.", parameters=greedy).output
        for count, _ in enumerate(isolated.stream("smollm2", "Count to one hundred.", parameters={"max_new_tokens": 200})):
            if count == 1:
                break  # closing the stream stops the worker's generation: the next call is served
        assert isolated.infer("smollm2", "Name a colour.", parameters=greedy).output == "".join(tokens)


def test_frames_come_out_whole_however_the_pipe_cuts_them() -> None:
    """The server's reader of a worker's stdout gives each frame once and whole, whatever
    reads the bytes arrive in: one byte at a time, frames split or several in one read."""
    rng = random.Random(11)
    for trial in range(40):
        bodies = [rng.randbytes(rng.choice([0, 1, 3, 4, 5, 100, 4096, 70_000])) for _ in range(rng.randint(1, 12))]
        stream = b"".join(FRAME.pack(len(body)) + body for body in bodies)
        got: list[bytes] = []
        frames = _Frames(got.append, lambda: None)
        position = 0
        while position < len(stream):
            step = 1 if trial % 5 == 0 else rng.randint(1, 9000)
            frames.data_received(stream[position : position + step])
            position += step
        assert got == bodies, trial


def test_a_large_answer_is_handed_over_without_a_copy() -> None:
    big = {"x": np.arange(HANDOVER // 4 + 16, dtype=np.float32), "small": np.ones(3)}
    arena = Arena()
    try:
        frame = pack(("ok", 0, big), arena, 0, handover=True)
        name = segment_of(frame[4:])
        assert name != arena.name and (Path(FOLDER) / name).exists()  # a segment of its own
        got = unpack(frame[4:], Mapped(), copy=True)[2]
        assert not (Path(FOLDER) / name).exists()  # taken: its name removed at once
        assert np.array_equal(got["x"], big["x"]) and np.array_equal(got["small"], big["small"])
        assert got["x"].flags.writeable
        base = got["x"].base
        while not isinstance(base, mmap.mmap):  # a view of the mapping itself, not a copy of it
            base = base.obj if isinstance(base, memoryview) else base.base
        # Small answers still go through the slot's arena (copied out by the server).
        small = unpack(pack(("ok", 0, {"y": np.ones(8)}), arena, 0, handover=True)[4:], Mapped(), copy=True)[2]
        assert segment_of(pack(("ok", 0, {"y": np.ones(8)}), arena, 0, handover=True)[4:]) == arena.name
        assert small["y"].tolist() == [1.0] * 8
    finally:
        arena.close()


def test_large_tensors_cross_both_ways(running: RunningServer) -> None:
    image = np.random.default_rng(7).random((1, 1 << 20), dtype=np.float32)  # 4 MiB each way
    with running.client(timeout=60) as client:
        for _ in range(3):
            answer = client.infer("crashy", {"big": image})
            # (the answer is a dict of arrays: it comes back as JSON, float32 values printed shortest)
            assert np.array_equal(np.asarray(answer.output["echo"]["big"], np.float32), image)
        pid = answer.output["pid"]
    # Each handed-over answer's segment is gone once read: what the worker has left in shared
    # memory is its slots' arenas, which never had to grow to hold an answer this large.
    left = [Path(FOLDER) / name for name in os.listdir(FOLDER) if name.startswith(f"inferd-{pid}-")]
    assert left and all(path.stat().st_size < image.nbytes for path in left)


def test_a_ctrl_c_or_sigterm_to_the_group_leaves_the_worker_to_the_server(running: RunningServer) -> None:
    # A terminal's Ctrl-C (SIGINT) and a SIGTERM sent to the whole process group reach the
    # worker too: it leaves its ending to the server's drain and teardown.
    with running.client(timeout=60) as client:
        pid = client.infer("crashy", {"a": 1}).output["pid"]
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert [client.infer("crashy", {"a": n}).output["pid"] for n in range(3)] == [pid] * 3
