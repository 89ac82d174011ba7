"""One worker process of an isolated model, as the server sees it: started, called, watched.

Calls go out on its stdin and answers come back on its stdout, a frame each
(:mod:`inferd.isolation.wire`), one slot a call in flight: a slot's shared memory is reused by
its next call only once the worker has answered the last one, so a call that the server gives
up on (cancelled, past its deadline) keeps its slot until the worker says it stopped. When the
process exits, every call in flight on it fails with UNAVAILABLE naming the model and why
(the signal that killed it: SIGSEGV, SIGKILL, often the out-of-memory killer).

The process is started by :class:`subprocess.Popen`, which uses ``vfork`` on Linux, and its pipes
and exit are then watched on the loop. The loop's own ``subprocess_exec`` (uvloop's included)
forks, which runs gRPC's fork handlers in the child of a process whose threads are in gRPC: it
logged a line at each start, and once aborted the child before it could exec (SIGABRT in c-ares).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import InferdError, Unavailable
from .wire import FRAME, Arena, Mapped, pack, remove_segments_of, unpack

__all__ = ["WorkerProcess", "cause_of"]

logger = logging.getLogger("inferd.isolation")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cause_of(returncode: int | None) -> str:
    """Why a worker ended, in words: the signal's name, or its exit status."""
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with status {returncode}"


class _Frames(asyncio.Protocol):
    """The worker's stdout cut into frames as it arrives, each handed to ``on_frame`` at once
    (no stream reader, no task between the pipe and the call waiting); ``on_end`` once the
    pipe is closed."""

    def __init__(self, on_frame: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end
        self._pending = bytearray()

    def data_received(self, data: bytes) -> None:
        if self._pending:
            # The rest of a frame cut across reads: kept until the frame is whole (copied
            # out once, not on every read of a large one).
            self._pending += data
            pending = self._pending
            if len(pending) < FRAME.size or len(pending) < FRAME.size + FRAME.unpack_from(pending)[0]:
                return
            data = bytes(pending)
            pending.clear()
        offset, size = 0, len(data)
        while size - offset >= FRAME.size:
            end = offset + FRAME.size + FRAME.unpack_from(data, offset)[0]
            if end > size:
                break
            self._on_frame(data[offset + FRAME.size : end])
            offset = end
        if offset < size:
            self._pending += data[offset:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_end()


class _Child:
    """A started process, its pipes on the loop, and its exit: ``on_end`` once it has exited and
    its stdout is closed (whichever comes last)."""

    def __init__(self, process: subprocess.Popen[bytes], on_end: Callable[[], None]) -> None:
        self.process = process
        self._on_end = on_end
        self._waiting = 2  # the exit, and the end of stdout
        self.stdin: asyncio.WriteTransport | None = None
        self._stdout: asyncio.ReadTransport | None = None
        self._pidfd = -1

    @classmethod
    async def start(cls, argv: list[str], env: dict[str, str], on_frame: Callable[[bytes], None], on_end: Callable[[], None]) -> _Child:
        loop = asyncio.get_running_loop()
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        child = cls(process, on_end)
        assert process.stdin is not None and process.stdout is not None
        child.stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, process.stdin)
        child._stdout, _ = await loop.connect_read_pipe(lambda: _Frames(on_frame, child._one_end), process.stdout)
        try:  # its exit, on the loop: a pidfd turns readable (Linux 5.3 and later)
            child._pidfd = os.pidfd_open(process.pid)
            loop.add_reader(child._pidfd, child._exited)
        except (AttributeError, OSError):  # elsewhere, or where a sandbox forbids it: a thread waits
            threading.Thread(target=child._wait, args=(loop,), name="inferd-worker-exit", daemon=True).start()
        return child

    def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        self.process.wait()
        loop.call_soon_threadsafe(self._one_end)

    def _exited(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.process.wait()  # it has exited: this only reaps it
        self._one_end()

    def _one_end(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._on_end()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def close(self) -> None:
        for transport in (self.stdin, self._stdout):
            if transport is not None:
                transport.close()


class WorkerProcess:
    """A worker process and its slots; :meth:`start` makes the workflow there."""

    def __init__(self, model: str, spec: dict[str, Any], slots: int, on_exit: Callable[[WorkerProcess], None]) -> None:
        self.model = model
        self._spec = spec
        self._on_exit = on_exit
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(slots):
            self._free.put_nowait(slot)
        self._arenas = [Arena() for _ in range(slots)]
        self._mapped = Mapped()
        self._waiting: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._child: _Child | None = None
        self._first: asyncio.Future[tuple[Any, ...] | None] | None = None
        #: Done once the process has exited and its pipes are closed.
        self._ended: asyncio.Future[None] | None = None
        self.inflight = 0
        self.served = 0
        self.pid = 0
        self.alive = False
        #: Set up and serving once (its end is then a death, or a stop, for the model to hear).
        self._served_once = False
        #: Takes no new calls (growing past max_rss_mb): replaced once its calls are done.
        self.draining = False
        self.cause = ""
        self.facts: dict[str, tuple[str, bool, bool]] = {}
        self.signature: tuple[list[Any], list[Any]] = ([], [])

    async def start(self) -> None:
        """Starts the process and sets the workflow up there; raises why it could not."""
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        loop = asyncio.get_running_loop()
        self._first, self._ended = loop.create_future(), loop.create_future()
        self._child = await _Child.start([sys.executable, "-m", "inferd.isolation.worker"], environment, self._frame, self._end)
        self.pid = self._child.process.pid
        self._write(pack(("start", self._spec)))
        first = await self._first
        if first is None:
            await self._ended
            raise RuntimeError(f"the worker process could not start: {cause_of(self._child.returncode)}")
        if first[0] == "failed":
            await self._ended
            raise RuntimeError(first[1])
        _, self.pid, self.facts, inputs, outputs = first
        self.signature = (inputs, outputs)
        self.alive = self._served_once = True

    def _write(self, data: bytes) -> None:
        stdin = self._child.stdin if self._child is not None else None
        if stdin is not None and not stdin.is_closing():
            stdin.write(data)

    def _frame(self, body: bytes) -> None:
        """One answer from the worker, on the loop as it arrives."""
        message = unpack(body, self._mapped, copy=True)
        if self._first is not None and not self._first.done():
            self._first.set_result(message)
            return
        if message[0] == "bye":
            return
        future = self._waiting.get(message[1])
        if future is not None and not future.done():
            future.set_result(message)

    def _end(self) -> None:
        """The process has exited: its calls in flight fail, its memory is let go."""
        assert self._child is not None and self._ended is not None
        self.alive = False
        self.cause = cause_of(self._child.returncode)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        failure = Unavailable(f"model {self.model!r}: its worker process {self.pid} died while serving ({self.cause})", model=self.model)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(failure)
        self._mapped.close()
        for arena in self._arenas:
            arena.close()
        remove_segments_of(self.pid)  # what a worker that died left in shared memory
        self._child.close()
        if not self._ended.done():
            self._ended.set_result(None)
        if self._served_once:
            self._on_exit(self)

    def rss_bytes(self) -> int:
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def _send(self, message: tuple[Any, ...], slot: int) -> asyncio.Future[tuple[Any, ...]]:
        if not self.alive or self._child is None:
            raise Unavailable(f"model {self.model!r}: its worker process is not running ({self.cause or 'stopped'})", model=self.model)
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._waiting[slot] = future
        self._write(pack(message, self._arenas[slot], slot))
        return future

    async def _answer(self, future: asyncio.Future[tuple[Any, ...]], slot: int) -> Any:
        """The answer to a call; the caller going sends a cancel and the slot stays taken until
        the worker answers (its shared memory may still be read)."""
        try:
            message = await asyncio.shield(future)
        except asyncio.CancelledError:
            if self.alive:
                self._write(pack(("cancel", slot)))
            future.add_done_callback(lambda _: None if future.cancelled() else future.exception())
            raise
        if message[0] == "ok":
            return message[2]
        if message[0] == "error":
            error = message[2]
            raise error if isinstance(error, InferdError) else Unavailable(str(error), model=self.model)
        raise RuntimeError(f"unexpected answer {message[0]!r} from the worker")

    async def call(self, stage: str, parameters: dict[str, Any], args: tuple[Any, ...]) -> Any:
        """One stage there (``"infer"``: preprocess, run and postprocess, with their timings)."""
        slot = await self._free.get()
        self.inflight += 1
        future: asyncio.Future[tuple[Any, ...]] | None = None
        try:
            message = ("infer", slot, parameters, args[0]) if stage == "infer" else ("call", slot, stage, parameters, args)
            future = self._send(message, slot)
            return await self._answer(future, slot)
        finally:
            self.inflight -= 1
            self.served += 1
            self._release(slot, future)

    def _release(self, slot: int, future: asyncio.Future[Any] | None) -> None:
        if future is None or future.done():
            self._waiting.pop(slot, None)
            self._free.put_nowait(slot)
        else:  # the worker has not answered yet: the slot comes back when it does
            future.add_done_callback(lambda _: self._release(slot, None))

    async def stream(self, parameters: dict[str, Any], features: Any, preprocess: bool) -> AsyncIterator[Any]:
        """The model's chunks, one asked for at a time (after its preprocess, there, when
        ``preprocess``); closing this closes the generator there."""
        slot = await self._free.get()
        self.inflight += 1
        future: asyncio.Future[tuple[Any, ...]] | None = None
        finished = False
        try:
            future = self._send(("open", slot, parameters, features, preprocess), slot)
            await self._answer(future, slot)
            while True:
                future = self._send(("next", slot), slot)
                if (await asyncio.shield(future))[0] == "end":
                    finished = True
                    return
                yield await self._answer(future, slot)
        finally:
            self.inflight -= 1
            self.served += 1
            if not finished and self.alive:
                # Closed early (the client went): a generator cannot be closed while it makes a
                # chunk, so the one being made is waited for, then the generator is closed.
                with contextlib.suppress(BaseException):
                    if future is not None and not future.done():
                        await asyncio.wait([future], timeout=30)
                    if future is None or future.done():
                        future = self._send(("close", slot), slot)
                        await asyncio.wait([future], timeout=30)
            self._release(slot, future)

    async def stop(self, grace: float = 10.0) -> None:
        """Runs the teardown there, then ends the process (killed after ``grace`` seconds)."""
        if self._child is None or self._ended is None or self._ended.done():
            return
        self.alive = False
        self._write(pack(("teardown",)))
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), grace)
        except asyncio.TimeoutError:
            self.kill()
            await self._ended

    def kill(self) -> None:
        if self._child is not None:
            self._child.kill()
