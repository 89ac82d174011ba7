"""A model's worker process: ``python -m inferd.isolation.worker`` (the server starts it).

It reads frames from stdin and answers on stdout (:mod:`inferd.isolation.wire`). The first
frame says which workflow to make (its reference, options, folder); the worker makes it, runs
its setup and ready, and answers with its stages and signature. Then each frame is one call
for one slot: ``("call", slot, stage, parameters, args)``; ``("infer", slot, parameters,
inputs)``: preprocess, run and postprocess in one go; ``("open", slot, parameters, features,
preprocess)`` starts a stream, whose chunks are asked for one at a time (``("next", slot)``: a
stream closed by the server stops within a chunk) and ``("close", slot)`` ends it; each is
answered ``("ok", slot, value)``, ``("end", slot)`` or ``("error", slot, error)``.
``("cancel", slot)`` stops a call; ``("teardown",)`` runs the teardown and exits.

The main thread only reads; plain stages run in a pool of threads (the model's
``max_concurrency``), which write their answers themselves; async stages run on an event loop
in a thread of their own. Errors go back as they were raised (an
:class:`inferd.errors.InferdError` keeps its class; any other becomes INTERNAL on the server,
its traceback logged here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import InferdError, InternalError
from ..repository import load_workflow_class
from ..stages import lower_priority
from ..workflow import cancellable, inspect_workflow
from .wire import FRAME, Arena, Mapped, pack, unpack

logger = logging.getLogger("inferd.worker")
_DONE = object()
_REQUEST_STAGES = ("preprocess", "run", "postprocess")


class Worker:
    def __init__(self, output: int, spec: dict[str, Any]) -> None:
        self._output = output
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, int(spec["threads"])), thread_name_prefix="inferd-worker")
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="inferd-worker-loop", daemon=True).start()
        self.mapped = Mapped()
        self._arenas: dict[int, Arena] = {}
        self._cancels: dict[int, threading.Event] = {}
        self._streams: dict[int, Any] = {}
        cls = load_workflow_class(spec["workflow"], spec["base_dir"])
        inspected = inspect_workflow(cls)
        self.stages = inspected.stages
        self.workflow = cls(**spec["options"])
        for name in ("setup", "ready"):
            stage = self.stages.get(name)
            if stage is not None and stage.overridden:
                value = self._stage(name, {})()
                if name == "ready" and not value:
                    raise RuntimeError("ready() returned False after setup")
        inputs, outputs = self.workflow.signature()
        facts = {name: (stage.kind, stage.takes_parameters, stage.overridden) for name, stage in self.stages.items()}
        if spec.get("nice"):
            # After the setup (a model's load is not kept waiting), before any request: every
            # thread so far, and those started later inherit it.
            lower_priority(spec["nice"], whole_process=True)
        self.send(("ready", os.getpid(), facts, list(inputs), list(outputs)))

    def send(self, message: tuple[Any, ...], slot: int | None = None) -> None:
        with self._lock:
            arena = None
            if slot is not None and message[0] == "ok":
                arena = self._arenas.get(slot)
                if arena is None:
                    arena = self._arenas[slot] = Arena()
            data = memoryview(pack(message, arena, -1 if slot is None else slot, handover=True))
            while data:
                data = data[os.write(self._output, data) :]

    def _stage(self, name: str, parameters: dict[str, Any], *args: Any) -> Callable[[], Any]:
        """A call of the stage, ready to run in this thread (an async one on the loop)."""
        function = getattr(self.workflow, name)
        if self.stages[name].takes_parameters:
            function = functools.partial(function, parameters=parameters)
        if self.stages[name].kind == "async":
            loop = self._loop
            return lambda: asyncio.run_coroutine_threadsafe(function(*args), loop).result()
        return functools.partial(function, *args)

    def _pipeline(self, parameters: dict[str, Any], inputs: Any) -> tuple[Any, list[tuple[str, float]]]:
        """preprocess, run and postprocess in one go, with each one's milliseconds."""
        timings = []
        value = inputs
        for name in _REQUEST_STAGES:
            if name != "run" and not self.stages[name].overridden:
                continue
            started = time.perf_counter()
            arguments = (inputs, value) if name == "postprocess" else (value,)
            value = self._stage(name, parameters, *arguments)()
            timings.append((f"worker:{name}", (time.perf_counter() - started) * 1000))
        return value, timings

    def _next(self, slot: int) -> Any:
        chunks = self._streams[slot]
        if isinstance(chunks, Iterator):
            return next(chunks, _DONE)
        return asyncio.run_coroutine_threadsafe(anext(chunks, _DONE), self._loop).result()

    def _close(self, slot: int) -> None:
        chunks = self._streams.pop(slot, None)
        if chunks is None:
            return
        if isinstance(chunks, Iterator):
            chunks.close()  # type: ignore[attr-defined]
        else:
            asyncio.run_coroutine_threadsafe(chunks.aclose(), self._loop).result()

    def _open(self, slot: int, parameters: dict[str, Any], features: Any, preprocess: bool) -> None:
        if preprocess and self.stages["preprocess"].overridden:  # not done by the server
            features = self._stage("preprocess", parameters, features)()
        arguments = {"parameters": parameters} if self.stages["stream"].takes_parameters else {}
        self._streams[slot] = getattr(self.workflow, "stream")(features, **arguments)

    def _work(self, message: tuple[Any, ...]) -> Callable[[], Any]:
        kind, slot = message[0], message[1]
        if kind == "call":
            return self._stage(message[2], message[3], *message[4])
        if kind == "infer":
            return functools.partial(self._pipeline, message[2], message[3])
        if kind == "open":
            return functools.partial(self._open, slot, message[2], message[3], message[4])
        if kind == "next":
            return functools.partial(self._next, slot)
        return functools.partial(self._close, slot)

    def dispatch(self, message: tuple[Any, ...]) -> None:
        slot = message[1]
        wrapped, cancelled = cancellable(self._work(message))
        self._cancels[slot] = cancelled
        self._pool.submit(self._serve, slot, message[0], wrapped)

    def _serve(self, slot: int, kind: str, work: Callable[[], Any]) -> None:
        try:
            value = work()
        except BaseException as error:  # noqa: BLE001 -- every failure goes back to the server
            if kind in ("open", "next"):
                self._streams.pop(slot, None)
            self.send(("error", slot, _portable(error)))
            return
        finally:
            self._cancels.pop(slot, None)
        if value is _DONE:
            self._streams.pop(slot, None)
            self.send(("end", slot))
        else:
            self.send(("ok", slot, value), slot)

    def cancel(self, slot: int) -> None:
        """A plain stage sees request_cancelled() turn true; a stream is closed after its chunk."""
        cancelled = self._cancels.get(slot)
        if cancelled is not None:
            cancelled.set()

    def teardown(self) -> None:
        for slot in list(self._streams):
            try:
                self._close(slot)
            except Exception:  # noqa: BLE001
                logger.exception("closing a stream at teardown failed")
        self._pool.shutdown(wait=True)
        stage = self.stages.get("teardown")
        if stage is not None and stage.overridden:
            self._stage("teardown", {})()
        for arena in self._arenas.values():
            arena.close()
        self.mapped.close()


def _portable(error: BaseException) -> BaseException:
    """The error as the server will raise it: an InferdError as it is (if it pickles), any
    other as an InternalError whose traceback is logged here."""
    if isinstance(error, InferdError):
        try:
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # noqa: BLE001
            pass
    logger.error("model stage failed:\n%s", "".join(traceback.format_exception(error)))
    return InternalError(f"{type(error).__name__}: {error}")


def _read(source: Any, size: int) -> bytes | None:
    data = source.read(size)
    return data if data is not None and len(data) == size else None


def main() -> None:
    # The server owns this process and ends it (a teardown, or its pipe closing): a Ctrl-C in
    # the terminal or a SIGTERM to the whole group reaches the server, which drains, then
    # tears this worker down; here they would only cut a call short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    source = os.fdopen(0, "rb")
    output = os.dup(1)
    os.dup2(2, 1)  # print() in a workflow goes to the log, not into the frames
    worker: Worker | None = None
    while (header := _read(source, FRAME.size)) is not None:
        body = _read(source, FRAME.unpack(header)[0])
        if body is None:
            break
        if worker is None:
            spec = unpack(body, Mapped(), copy=True)[1]
            try:
                worker = Worker(output, spec)
            except BrokenPipeError:
                return  # the server went while this worker was setting up: nothing to answer to
            except BaseException as error:  # noqa: BLE001
                os.write(output, pack(("failed", f"{type(error).__name__}: {error}")))
                return
            continue
        message = unpack(body, worker.mapped, copy=False)
        if message[0] == "cancel":
            worker.cancel(message[1])
        elif message[0] == "teardown":
            worker.teardown()
            worker.send(("bye",))
            # The workflow is torn down: skip the interpreter's own teardown (joining stage
            # threads, freeing torch's), which can take seconds the server's grace_s counts.
            logging.shutdown()
            os._exit(0)
        else:
            worker.dispatch(message)
    # stdin closed: the server went, nothing to answer to


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("INFERD_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")  # fmt: skip
    main()
