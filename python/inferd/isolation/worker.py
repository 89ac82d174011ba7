"""A model's worker process: ``python -m inferd.isolation.worker`` (the server starts it).

It reads frames from stdin and answers on stdout (:mod:`inferd.isolation.wire`). The first
frame says which workflow to make (its reference, options, folder); the worker makes it, runs
its setup and ready, and answers with its stages and signature. Then each frame is one call
of a stage for one slot: ``("call", slot, stage, parameters, args)``, answered
``("ok", slot, value)`` or ``("error", slot, error)``; ``("open", slot, parameters, features)``
starts a stream, whose chunks are asked for one at a time (``("next", slot)``: so that a
stream closed by the server stops within a chunk) and ``("close", slot)`` ends it;
``("cancel", slot)`` stops a call; ``("teardown",)`` runs the teardown and exits.

Plain stages run in threads (as many as the model's ``max_concurrency``), async ones on this
process's event loop. Errors go back as they were raised (an :class:`inferd.errors.InferdError`
keeps its class; any other becomes INTERNAL on the server, its traceback logged here).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import InferdError
from ..repository import load_workflow_class
from ..workflow import cancellable, inspect_workflow
from .wire import FRAME, Arena, Mapped, pack, unpack

logger = logging.getLogger("inferd.worker")
_DONE = object()


class Worker:
    def __init__(self, output: Any, threads: int) -> None:
        self._output = output
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="inferd-worker")
        self._mapped = Mapped()
        self._arenas: dict[int, Arena] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancels: dict[int, Any] = {}
        self._streams: dict[int, AsyncIterator[Any]] = {}
        self.workflow: Any = None

    def send(self, message: tuple[Any, ...], slot: int | None = None) -> None:
        arena = None
        if slot is not None:
            arena = self._arenas.get(slot)
            if arena is None:
                arena = self._arenas[slot] = Arena()
        self._output.write(pack(message, arena, -1 if slot is None else slot))
        self._output.flush()

    async def start(self, spec: dict[str, Any]) -> None:
        cls = load_workflow_class(spec["workflow"], spec["base_dir"])
        inspected = inspect_workflow(cls)
        self.workflow = cls(**spec["options"])
        self.stages = inspected.stages
        for name in ("setup", "ready"):
            stage = inspected.stages.get(name)
            if stage is not None and stage.overridden:
                value = await self._call(name, {}, ())
                if name == "ready" and not value:
                    raise RuntimeError("ready() returned False after setup")
        inputs, outputs = self.workflow.signature()
        facts = {name: (stage.kind, stage.takes_parameters, stage.overridden) for name, stage in inspected.stages.items()}
        self.send(("ready", os.getpid(), facts, list(inputs), list(outputs)))

    async def _call(self, name: str, parameters: dict[str, Any], args: tuple[Any, ...], slot: int | None = None) -> Any:
        stage = self.stages[name]
        function = getattr(self.workflow, name)
        if stage.takes_parameters:
            function = functools.partial(function, parameters=parameters)
        if stage.kind == "async":
            return await function(*args)
        wrapped, cancelled = cancellable(functools.partial(function, *args))
        if slot is not None:
            self._cancels[slot] = cancelled
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, wrapped)
        finally:
            if slot is not None:
                self._cancels.pop(slot, None)

    async def _pipeline(self, parameters: dict[str, Any], inputs: Any, slot: int) -> tuple[Any, list[tuple[str, float]]]:
        """preprocess, run and postprocess in one go (one crossing a request, where nothing
        batches between them), with each one's milliseconds."""
        names = [name for name in ("preprocess", "run", "postprocess") if name == "run" or self.stages[name].overridden]
        timings: list[tuple[str, float]] = []

        def stage(name: str, value: Any) -> Any:
            started = time.perf_counter()
            function = getattr(self.workflow, name)
            if self.stages[name].takes_parameters:
                function = functools.partial(function, parameters=parameters)
            value = function(inputs, value) if name == "postprocess" else function(value)
            timings.append((f"worker:{name}", (time.perf_counter() - started) * 1000))
            return value

        if all(self.stages[name].kind == "sync" for name in names):  # one hop to a thread for all
            def whole() -> Any:
                value = inputs
                for name in names:
                    value = stage(name, value)
                return value

            wrapped, cancelled = cancellable(whole)
            self._cancels[slot] = cancelled
            try:
                value = await asyncio.get_running_loop().run_in_executor(self._executor, wrapped)
            finally:
                self._cancels.pop(slot, None)
            return value, timings
        value = inputs
        for name in names:
            started = time.perf_counter()
            value = await self._call(name, parameters, (inputs, value) if name == "postprocess" else (value,), slot)
            timings.append((f"worker:{name}", (time.perf_counter() - started) * 1000))
        return value, timings

    async def serve(self, message: tuple[Any, ...]) -> None:
        kind, slot = message[0], message[1]
        try:
            if kind == "call":
                value = await self._call(message[2], message[3], message[4], slot)
            elif kind == "infer":
                value = await self._pipeline(message[2], message[3], slot)
            elif kind == "open":
                features = message[3]
                if message[4] and self.stages["preprocess"].overridden:  # not done by the server
                    features = await self._call("preprocess", message[2], (features,), slot)
                self._streams[slot] = self._stream(message[2], features)
                value = None
            elif kind == "next":
                value = await anext(self._streams[slot], _DONE)
                if value is _DONE:
                    self._streams.pop(slot, None)
                    self.send(("end", slot))
                    return
            else:  # close
                stream = self._streams.pop(slot, None)
                if stream is not None:
                    await stream.aclose()  # type: ignore[attr-defined]
                value = None
        except asyncio.CancelledError:
            self._streams.pop(slot, None)
            self.send(("cancelled", slot))
            return
        except BaseException as error:  # noqa: BLE001 -- every failure goes back to the server
            self._streams.pop(slot, None)
            self.send(("error", slot, _portable(error)))
            return
        self.send(("ok", slot, value), slot)

    async def _stream(self, parameters: dict[str, Any], features: Any) -> AsyncIterator[Any]:
        stage = self.stages["stream"]
        arguments = {"parameters": parameters} if stage.takes_parameters else {}
        generator = self.workflow.stream(features, **arguments)
        if stage.kind == "async_generator":
            try:
                async for chunk in generator:
                    yield chunk
            finally:
                await generator.aclose()
            return
        steps: Iterator[Any] = generator
        loop = asyncio.get_running_loop()
        try:
            while (chunk := await loop.run_in_executor(self._executor, next, steps, _DONE)) is not _DONE:
                yield chunk
        finally:
            await loop.run_in_executor(self._executor, steps.close)  # type: ignore[attr-defined]

    def cancel(self, slot: int) -> None:
        cancelled = self._cancels.get(slot)
        if cancelled is not None:
            cancelled.set()  # a plain stage sees request_cancelled() turn true
        task = self._tasks.get(slot)
        if task is not None:
            task.cancel()

    def dispatch(self, message: tuple[Any, ...]) -> None:
        slot = message[1]
        task = asyncio.ensure_future(self.serve(message))
        self._tasks[slot] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(slot) is done:
                del self._tasks[slot]

        task.add_done_callback(forget)

    async def teardown(self) -> None:
        for stream in list(self._streams.values()):
            await stream.aclose()  # type: ignore[attr-defined]
        stage = self.stages.get("teardown") if self.workflow is not None else None
        if stage is not None and stage.overridden:
            await self._call("teardown", {}, ())
        for arena in self._arenas.values():
            arena.close()
        self._mapped.close()


def _portable(error: BaseException) -> BaseException:
    """The error as the server will raise it: an InferdError as it is (if it pickles), any
    other as an InternalError whose traceback is logged here."""
    if isinstance(error, InferdError):
        try:
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # noqa: BLE001
            pass
    from ..errors import InternalError

    logger.error("model stage failed:\n%s", "".join(traceback.format_exception(error)))
    return InternalError(f"{type(error).__name__}: {error}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0))
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a workflow goes to the log, not into the frames
    worker: Worker | None = None
    while True:
        try:
            header = await reader.readexactly(FRAME.size)
        except asyncio.IncompleteReadError:
            return  # the server went: nothing to answer to
        body = await reader.readexactly(FRAME.unpack(header)[0])
        if worker is None:
            message = unpack(body, Mapped(), copy=True)
            worker = Worker(output, message[1]["threads"])
            try:
                await worker.start(message[1])
            except BaseException as error:  # noqa: BLE001
                worker.send(("failed", f"{type(error).__name__}: {error}"))
                return
            continue
        message = unpack(body, worker._mapped, copy=False)
        kind = message[0]
        if kind == "cancel":
            worker.cancel(message[1])
        elif kind == "teardown":
            await worker.teardown()
            worker.send(("bye",))
            return
        else:
            worker.dispatch(message)


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("INFERD_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")  # fmt: skip
    asyncio.run(main())
