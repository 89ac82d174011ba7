"""Workflows that exist to provoke behaviours: blocking, failing, counting, streaming forever.

The tests share state with them through module globals; the server runs in the test process.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from inferd import Workflow


class Gate(Workflow):
    """``run`` waits until the test opens the gate; counts runs."""

    opened = threading.Event()
    entered = threading.Event()
    runs = 0

    def run(self, features: Any) -> Any:
        type(self).runs += 1
        type(self).entered.set()
        type(self).opened.wait(30)
        return {"echo": features}


class BrokenSetup(Workflow):
    def setup(self) -> None:
        raise FileNotFoundError("weights not found: /models/missing.bin")

    def run(self, features: Any) -> Any:
        return features


class Crashing(Workflow):
    def run(self, features: Any) -> Any:
        raise ZeroDivisionError("secret internal detail")


class CountedSetup(Workflow):
    """Counts setups; ``setup`` waits for ``release`` so that concurrent Setup calls overlap."""

    setups = 0
    release = threading.Event()

    def setup(self) -> None:
        type(self).setups += 1
        type(self).release.wait(30)

    def run(self, features: Any) -> Any:
        return {"setups": type(self).setups}


class Endless(Workflow):
    """Streams numbers forever, one for each permit the test releases; records how many it
    made and whether it was closed."""

    permits = threading.Semaphore(0)
    produced = 0
    closed = threading.Event()

    def stream(self, features: Any) -> Iterator[int]:
        try:
            while type(self).permits.acquire(timeout=30):
                type(self).produced += 1
                yield type(self).produced
        finally:
            type(self).closed.set()


class AsyncEndless(Workflow):
    """The same as an async generator, on the event loop."""

    permits = threading.Semaphore(0)
    produced = 0
    closed = threading.Event()

    async def stream(self, features: Any) -> AsyncIterator[int]:
        try:
            while True:
                while not type(self).permits.acquire(blocking=False):
                    await asyncio.sleep(0.001)
                type(self).produced += 1
                yield type(self).produced
        finally:
            type(self).closed.set()


class Inputs(Workflow):
    """Answers with what its input adapter gave it, and the parameters."""

    def preprocess(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        return {"inputs": inputs, "parameters": parameters}

    async def run(self, features: Any) -> Any:
        return features


class SlowGate(Gate):
    """A gate of its own, for the server-side timeout test."""

    opened = threading.Event()
    entered = threading.Event()
    runs = 0


class Doubler(Workflow):
    """Doubles float32 rows of width 4; records each batch's rows. Waits at the gate while it
    is closed, so that tests can make requests queue. A row whose first value is -1 makes it
    raise; a row whose first value is -2 makes it return one row too few."""

    gate = threading.Event()
    batches: list[list[float]] = []

    def preprocess(self, inputs: Any) -> Any:
        from inferd.workflow import TensorSpec, check_tensors
        import numpy as np

        return check_tensors(inputs, [TensorSpec("x", np.dtype("float32"), (None, 4))])

    def run(self, features: Any) -> Any:
        type(self).gate.wait(30)
        return self.double(features)

    def double(self, features: Any) -> Any:
        rows = features["x"]
        type(self).batches.append([float(value) for value in rows[:, 0]])
        if (rows[:, 0] == -1).any():
            raise RuntimeError("the model failed on this batch")
        if (rows[:, 0] == -2).any():
            return {"y": rows[1:] * 2}
        return {"y": rows * 2}


class HeldDoubler(Doubler):
    """:class:`Doubler` that records each batch's size in ``held`` as it comes to ``run``; the
    n-th batch then waits until ``open(n)`` (the chaos tests kill clients whose rows it holds)."""

    held: list[int] = []
    opened = 0
    condition = threading.Condition()

    @classmethod
    def open(cls, batches: int) -> None:
        with cls.condition:
            cls.opened = batches
            cls.condition.notify_all()

    def run(self, features: Any) -> Any:
        cls = type(self)
        with cls.condition:
            cls.held.append(len(features["x"]))
            number = len(cls.held)
            cls.condition.wait_for(lambda: cls.opened >= number, timeout=30)
        return self.double(features)


class RawDoubler(Workflow):
    """Doubles the request's own tensors: no preprocess, so what a batched request submits is
    its payload as it came."""

    def run(self, features: Any) -> Any:
        return {"y": features["x"] * 2}


class InlineDoubler(Doubler):
    """:class:`Doubler` with every stage inline: its batches run on the event loop (no gate:
    an inline stage that waited would stop the server)."""

    from inferd import inline as _inline

    @_inline
    def preprocess(self, inputs: Any) -> Any:
        return super().preprocess(inputs)

    @_inline
    def run(self, features: Any) -> Any:
        return self.double(features)


class CountedInline(Workflow):
    """Counts its runs; every stage inline, parameters taken by postprocess (the engine's
    one-go path for models that never leave the event loop)."""

    runs = 0

    from inferd import inline as _inline

    @_inline
    def preprocess(self, inputs: Any) -> Any:
        return {"text": inputs, "threads": [threading.current_thread().name]}

    @_inline
    def run(self, features: Any) -> Any:
        type(self).runs += 1
        if features["text"] == "fail":
            raise RuntimeError("the model failed on this input")
        return {**features, "runs": type(self).runs, "threads": [*features["threads"], threading.current_thread().name]}

    @_inline
    def postprocess(self, inputs: Any, outputs: Any, parameters: dict[str, Any]) -> Any:
        threads = [*outputs["threads"], threading.current_thread().name]
        return {**outputs, "suffix": parameters.get("suffix", ""), "threads": threads}


class Threads(Workflow):
    """Reports which thread ran each stage: an inline preprocess, a plain run."""

    from inferd import inline as _inline

    @_inline
    def preprocess(self, inputs: Any) -> Any:
        return {"preprocess": threading.current_thread().name}

    def run(self, features: Any) -> Any:
        return {**features, "run": threading.current_thread().name}


class Sleeper(Workflow):
    """``run`` sleeps on the loop for a minute: a request that ends only by being cancelled or
    running out of time (20 ms was once outlived by a client's 2 ms wait on a busy machine)."""

    async def run(self, features: Any) -> Any:
        await asyncio.sleep(60)
        return {"slept": True}


class HeapFrozen(Workflow):
    """Answers how many objects the garbage collector leaves out of its passes (``gc.freeze``),
    and whether this model's own object is one of them (an eager model is set up first)."""

    def run(self, features: Any) -> Any:
        return {"frozen": gc.get_freeze_count(), "mine": all(seen is not self for seen in gc.get_objects())}


class Ticker(Workflow):
    """Streams a number every millisecond, for ever (until the caller goes)."""

    async def stream(self, features: Any) -> AsyncIterator[int]:
        count = 0
        while True:
            await asyncio.sleep(0.001)
            count += 1
            yield count



class ShutdownProbe(Workflow):
    """``run`` waits for the test's gate; each stage that ends says so in ``events``, in order."""

    opened = threading.Event()
    entered = threading.Event()
    events: list[str] = []

    def run(self, features: Any) -> Any:
        type(self).entered.set()
        type(self).opened.wait(30)
        type(self).events.append(f"run {features}")
        return features

    def teardown(self) -> None:
        type(self).events.append("teardown")


class TensorEcho(Workflow):
    """Answers with its input tensors as they came (the protocols' round trips)."""

    def run(self, features: Any) -> Any:
        return features


class Held(Workflow):
    """``run`` waits for ``release``; counts teardowns (the unload-drains test)."""

    release = threading.Event()
    entered = threading.Event()
    teardowns = 0

    def run(self, features: Any) -> Any:
        type(self).entered.set()
        type(self).release.wait(30)
        return features

    def teardown(self) -> None:
        type(self).teardowns += 1


class Reloadable(Workflow):
    """Numbers its instances; ``run`` waits for ``release`` when asked to (``{"wait": true}``);
    ``fail_next`` fails the next setup; records which instances were torn down (reload tests)."""

    instances = 0
    fail_next = False
    release = threading.Event()
    entered = threading.Event()
    torn_down: list[int] = []

    def setup(self) -> None:
        if type(self).fail_next:
            type(self).fail_next = False
            raise RuntimeError("the new weights do not load")
        type(self).instances += 1
        self.generation = type(self).instances

    def run(self, features: Any) -> Any:
        if isinstance(features, dict) and features.get("wait"):
            type(self).entered.set()
            type(self).release.wait(30)
        return {"generation": self.generation}

    def teardown(self) -> None:
        type(self).torn_down.append(self.generation)


class Versioned(Workflow):
    """Answers which version of it runs (its ``version`` option) and what it was given."""

    def run(self, features: Any) -> Any:
        return {"version": self.options["version"], "echo": features}


class Crashy(Workflow):
    """For isolation: ``{"crash": true}`` segfaults the process, ``{"leak": n}`` keeps n MiB,
    ``{"hang": s}`` sleeps s seconds in run; any other input comes back with the process id."""

    kept: list[bytes] = []

    def run(self, features: Any) -> Any:
        import os

        if isinstance(features, dict):
            if features.get("crash"):
                import ctypes

                ctypes.string_at(0)  # a segfault: the worker process dies
            if features.get("leak"):
                type(self).kept.append(b"x" * (int(features["leak"]) << 20))
            if features.get("hang"):
                import time
                from pathlib import Path

                if features.get("mark"):  # the test waits for this file: the call is in run
                    Path(features["mark"]).touch()

                time.sleep(float(features["hang"]))
        return {"pid": os.getpid(), "echo": features}

    def stream(self, features: Any) -> Iterator[Any]:
        import time
        from pathlib import Path

        sent = 0
        try:
            for i in range(int(features.get("chunks", 3))):
                time.sleep(float(features.get("gap", 0)))
                yield f"chunk {i}"
                sent += 1
        finally:  # closed early or done: the test reads how far it got
            if features.get("mark"):
                Path(features["mark"]).write_text(str(sent))


class Valve(Workflow):
    """Holds its callers until the test opens its valve (``options.valve``: a name of its own):
    ``run`` waits; ``stream`` waits before each chunk and counts the steps it began; with
    batching on, the batch's ``run`` waits. ``entered`` counts the calls waiting now."""

    valves: dict[str, threading.Event] = {}
    entered: dict[str, int] = {}
    steps: dict[str, int] = {}
    lock = threading.Lock()

    def __init__(self, path: Any = None, *, valve: str = "valve", seconds: float = 0.0, one_shot: bool = False) -> None:
        super().__init__(path)
        self.valve = valve
        self.seconds = seconds
        self.one_shot = one_shot  # each opening lets one wait through
        type(self).valves.setdefault(valve, threading.Event())

    def _wait(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.entered[self.valve] = cls.entered.get(self.valve, 0) + 1
        try:
            if self.seconds:
                time.sleep(self.seconds)
            else:
                cls.valves[self.valve].wait(60)
                if self.one_shot:
                    cls.valves[self.valve].clear()
        finally:
            with cls.lock:
                cls.entered[self.valve] -= 1

    def preprocess(self, inputs: Any) -> Any:
        import numpy as np

        return {"input": np.asarray([[float(inputs.get("x", 0)) if isinstance(inputs, dict) else 0.0]], np.float32)}

    def run(self, features: Any) -> Any:
        self._wait()
        return features

    def postprocess(self, inputs: Any, outputs: Any) -> Any:
        return {"x": float(outputs["input"][0][0])}

    def stream(self, features: Any) -> Iterator[Any]:
        for i in range(1000):
            with type(self).lock:
                type(self).steps[self.valve] = type(self).steps.get(self.valve, 0) + 1
            self._wait()
            yield f"step {i}"


class Niceness(Workflow):
    """Reports the nice value and the scheduling policy of the thread that runs it, and its
    process id."""

    def run(self, features: Any) -> Any:
        import os

        tid = threading.get_native_id()
        return {"nice": os.getpriority(os.PRIO_PROCESS, tid), "policy": os.sched_getscheduler(tid), "pid": os.getpid()}
