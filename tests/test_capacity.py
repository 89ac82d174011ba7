"""Capacity per model: a model whose every stage thread is held (its workflow waits on an event
the test holds) does not hold up another model's requests, for a plain run, a plain stream and
a batched model; its own extra requests queue, then are refused; opening the event lets them
all finish. A cancelled plain generator gives its thread back after its current step and no
later step runs. Clients that honour the retry hint against a saturated model all finish,
without hammering it. Counted, not timed."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from workflows_for_tests import Valve

from inferd.config import ServiceConfig
from inferd.errors import ResourceExhausted

VALVE = "workflows_for_tests:Valve"
NICENESS = "workflows_for_tests:Niceness"
#: Each held model: 4 stage threads, 6 requests in flight at most (4 running, 2 waiting).
LIMITS = {"max_concurrency": 4, "max_inflight": 6}


@pytest.fixture(scope="module")
def running() -> Iterator[RunningServer]:
    config = ServiceConfig.model_validate({"models": {
        "held-run": {"workflow": VALVE, "options": {"valve": "run"}, "limits": LIMITS},
        "held-stream": {"workflow": VALVE, "options": {"valve": "stream"}, "limits": LIMITS},
        "held-batch": {"workflow": VALVE, "options": {"valve": "batch"}, "limits": LIMITS,
                       "batching": {"max_batch_size": 1, "max_delay_ms": 1, "max_running": 4}},
        "one-step": {"workflow": VALVE, "options": {"valve": "one-step", "one_shot": True}, "limits": {"max_concurrency": 1}},
        "saturated": {"workflow": VALVE, "options": {"valve": "saturated", "seconds": 0.05},
                      "limits": {"max_concurrency": 2, "max_inflight": 2}},
        "other": {"workflow": "workflows_for_tests:Threads", "limits": {"max_concurrency": 1}},
        "plain": {"workflow": NICENESS},
        "low": {"workflow": NICENESS, "nice": 5},
        "low-isolated": {"workflow": NICENESS, "nice": 7, "isolation": "process", "setup": "lazy"},
        "idle": {"workflow": NICENESS, "nice": "idle"},
        "idle-isolated": {"workflow": NICENESS, "nice": "idle", "isolation": "process", "setup": "lazy"},
    }}).with_server(metrics={"address": "127.0.0.1:0"})  # fmt: skip
    server = RunningServer(config)
    yield server
    server.stop()


def until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {seconds} s"
        time.sleep(0.01)


def _call(running: RunningServer, model: str) -> Any:
    with running.client(timeout=90) as client:
        if model == "held-stream":
            for chunk in client.stream(model, {"x": 1}):
                return chunk.output
        return client.infer(model, {"x": 1}).output


@pytest.mark.parametrize("model", ["held-run", "held-stream", "held-batch"])
def test_a_model_with_every_thread_held_holds_up_no_other(running: RunningServer, model: str) -> None:
    valve = Valve.valves[model.removeprefix("held-")]
    name = model.removeprefix("held-")
    valve.clear()
    with ThreadPoolExecutor(6) as pool, running.client(timeout=30) as client:
        held = [pool.submit(_call, running, model) for _ in range(4)]
        until(lambda: Valve.entered.get(name, 0) == 4, f"{model}'s four threads held")
        queued = [pool.submit(_call, running, model) for _ in range(2)]  # in flight, waiting for a thread
        until(lambda: running.server.engine.report(model).inflight == 6, f"{model}'s six calls in flight")
        with pytest.raises(ResourceExhausted) as refused:  # the 7th: over max_inflight
            _call(running, model)
        assert f"'{model}'" in str(refused.value) and refused.value.retry_after_ms >= 1
        # Another threaded model answers at once, many times over, while this one is held.
        for i in range(20):
            assert client.infer("other", {"i": i}).output["run"].startswith("inferd-stage:other")
        assert Valve.entered.get(name, 0) == 4 and not any(f.done() for f in held + queued)
        valve.set()
        answers = [f.result(60) for f in held + queued]
    assert len(answers) == 6 and all(answer in ({"x": 1.0}, "step 0") for answer in answers)


def test_a_cancelled_plain_generator_gives_its_thread_back_after_its_step(running: RunningServer) -> None:
    valve = Valve.valves["one-step"]
    valve.clear()
    before = Valve.steps.get("one-step", 0)
    with running.client(timeout=30) as client:
        stream = client.stream("one-step", {"x": 1})
        valve.set()  # lets one step through: the first
        assert next(stream).output == "step 0"
        until(lambda: Valve.entered.get("one-step", 0) == 1, "the second step")  # in the only thread
        stream.close()  # the client goes, while that step runs
        valve.set()  # the step returns: its thread is given back, and no third step begins
        until(lambda: Valve.entered.get("one-step", 0) == 0, "the second step's end")
        valve.set()  # for the run below
        assert client.infer("one-step", {"x": 2}).output == {"x": 2.0}  # the one thread is free
    assert Valve.steps["one-step"] - before == 2


def test_clients_that_honour_the_retry_hint_all_finish(running: RunningServer) -> None:
    """50 clients, 2 requests each, against a model that takes 2 at a time for 50 ms each."""
    attempts = [0] * 50

    def client_loop(index: int) -> int:
        done = 0
        with running.client(timeout=60) as client:
            for _ in range(60 * 2):
                attempts[index] += 1
                try:
                    client.infer("saturated", {"x": index})
                except ResourceExhausted as refused:
                    time.sleep(refused.retry_after_ms / 1000)  # what the server said to do
                    continue
                done += 1
                if done == 2:
                    break
        return done

    with ThreadPoolExecutor(50) as pool:
        finished = list(pool.map(client_loop, range(50)))
    assert finished == [2] * 50
    assert sum(attempts) < 50 * 2 * 3, attempts


def test_more_threads_than_the_server_cap_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"the models' stage threads \(a 4, b 9\) are more than \[server\] threads = 12"):
        ServiceConfig.model_validate({"server": {"threads": 12}, "models": {
            "a": {"workflow": "echo"},
            "b": {"workflow": "echo", "limits": {"max_concurrency": 8}, "batching": {"max_batch_size": 4}},
        }})  # fmt: skip
    assert ServiceConfig.model_validate({"server": {"threads": 13}, "models": {"a": {"workflow": "echo"}}}).server.threads == 13


def _nice_of(pid: int, tid: int) -> int:
    return int(Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a nice value for each thread is Linux's")
def test_nice_lowers_only_the_models_own_threads_and_processes(running: RunningServer) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the server's (CI may itself run under nice)
    with running.client(timeout=90) as client:
        plain, low, isolated = (client.infer(model, {"x": 1}).output for model in ("plain", "low", "low-isolated"))
    assert plain["nice"] == base and plain["pid"] == os.getpid()
    assert low["nice"] == min(19, base + 5) and low["pid"] == os.getpid()
    assert isolated["nice"] == min(19, base + 7) and isolated["pid"] != os.getpid()
    # Every thread of the worker process, those started before its spec was read included.
    worker_threads = os.listdir(f"/proc/{isolated['pid']}/task")
    assert len(worker_threads) > 1
    assert {_nice_of(isolated["pid"], int(tid)) for tid in worker_threads} == {min(19, base + 7)}
    # The server's own threads (its event loop among them) keep their priority.
    assert _nice_of(os.getpid(), threading.get_native_id()) == base


def _policy_of(tid: int) -> int:
    return int(Path(f"/proc/{tid}/stat").read_text().rsplit(")", 1)[1].split()[38])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_idle_puts_only_the_models_own_threads_and_processes_under_sched_idle(running: RunningServer) -> None:
    with running.client(timeout=90) as client:
        idle, isolated = (client.infer(model, {"x": 1}).output for model in ("idle", "idle-isolated"))
    assert idle["policy"] == os.SCHED_IDLE and idle["nice"] == 19 and idle["pid"] == os.getpid()
    assert isolated["policy"] == os.SCHED_IDLE and isolated["pid"] != os.getpid()
    worker_threads = [int(tid) for tid in os.listdir(f"/proc/{isolated['pid']}/task")]
    assert len(worker_threads) > 1
    assert {_policy_of(tid) for tid in worker_threads} == {os.SCHED_IDLE}
    assert {_nice_of(isolated["pid"], tid) for tid in worker_threads} == {19}
    # The server's own threads keep theirs: its event loop's, and this one.

    async def loop_thread() -> int:
        return threading.get_native_id()

    assert _policy_of(running.call(loop_thread())) == _policy_of(threading.get_native_id()) == os.SCHED_OTHER


def test_nice_is_refused_where_it_has_no_threads_to_lower() -> None:
    from inferd.errors import ConfigError

    for model in ({"workflow": NICENESS, "nice": 3, "inline": True}, {"workflow": NICENESS, "nice": 20},
                  {"workflow": NICENESS, "nice": "idle", "inline": True}, {"workflow": NICENESS, "nice": "lowest"}):  # fmt: skip
        with pytest.raises((ConfigError, ValueError), match="nice"):
            ServiceConfig.model_validate({"models": {"m": model}})
