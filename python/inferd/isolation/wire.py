"""Messages between the server and a model's worker process.

A message is a frame on the worker's pipe: 4 bytes of length, a fixed header (the slot, how
the buffers travel, the segment's name and their spans in it), then a pickle (protocol 5) of a
small tuple. The buffers of the objects in it (numpy arrays, bytes of 1 KiB and more) do not
go into the pickle: they are written into a shared memory segment of the request's slot (an
:class:`Arena`), and the header names where. Each slot has one arena a direction; a message too
large for one gets a larger segment, named in the frame, which the other side maps once.

A large answer (:data:`HANDOVER` bytes of buffers and more) does not go through the slot's
arena: the worker writes it into a segment of its own and hands that over. The server maps it,
removes its name at once, and reads the arrays as views of the mapping, with no copy: the
memory lives as long as the arrays do, and goes back to the system with the last of them.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import struct
import tempfile
from typing import Any

__all__ = ["Arena", "Mapped", "pack", "unpack", "segment_of", "remove_segments_of", "FRAME", "HANDOVER"]

#: The length of a frame's body.
FRAME = struct.Struct("<I")
#: A body's header: the slot, where its buffers are (_INLINE, _ARENA, _HANDED), the segment
#: name's length and the number of spans; the name and the spans (offset, length) follow.
_HEAD = struct.Struct("<iBBH")
_INLINE, _ARENA, _HANDED = 0, 1, 2
#: Arenas start at this size and double as messages need (a 64 MiB answer: 7 growths once).
_INITIAL = 1 << 20
_ALIGN = 64
#: An answer's buffers of this many bytes and more are handed over in a segment of their own.
HANDOVER = 1 << 20
#: Where segments live: shared memory (tmpfs) on Linux, else the temporary folder.
FOLDER = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_numbers = itertools.count()


class _Segment:
    """A file in shared memory, mapped: the one who made it unlinks it at close."""

    def __init__(self, name: str, size: int = 0, *, taken: bool = False) -> None:
        self.name = name
        path = os.path.join(FOLDER, name)
        self._owner = size > 0
        self.closed = False
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if self._owner else 0), 0o600)
        try:
            if taken:  # handed over: the mapping is all there is of it from now on
                os.unlink(path)
            if self._owner:
                os.ftruncate(fd, size)
            self.size = os.fstat(fd).st_size
            self.buf: memoryview = memoryview(mmap.mmap(fd, self.size))
        finally:
            os.close(fd)

    def close(self, *, unlink: bool = True) -> None:
        """Unmaps it; its maker also removes its name, unless ``unlink`` is false (a segment
        handed over: the receiver removes the name when it maps it)."""
        if self.closed:
            return
        self.closed = True
        mapping = self.buf.obj
        try:
            self.buf.release()
            mapping.close()  # type: ignore[attr-defined]
        except BufferError:  # a view of it lives on (a caller kept a tensor): freed with it
            pass
        if self._owner and unlink:
            try:
                os.unlink(os.path.join(FOLDER, self.name))
            except FileNotFoundError:
                pass


def remove_segments_of(pid: int) -> None:
    """Removes the names of process ``pid``'s segments (once it has exited: a worker killed
    mid-call had no chance to)."""
    prefix = f"inferd-{pid}-"
    for name in os.listdir(FOLDER):
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(FOLDER, name))


def _segment(size: int) -> _Segment:
    return _Segment(f"inferd-{os.getpid()}-{next(_numbers)}", size)


class Arena:
    """A shared memory segment one side writes a message's buffers into."""

    def __init__(self, size: int = _INITIAL) -> None:
        self.memory = _segment(size)

    @property
    def name(self) -> str:
        return self.memory.name

    def write(self, buffers: list[pickle.PickleBuffer]) -> list[tuple[int, int]]:
        """Copies the buffers in (growing the segment first when they do not fit); their
        (offset, length) in it."""
        views = [buffer.raw() for buffer in buffers]
        total = sum(-(-len(view) // _ALIGN) * _ALIGN for view in views)
        if total > self.memory.size:
            self.close()
            self.memory = _segment(max(total, self.memory.size * 2))
        spans, offset = [], 0
        target = self.memory.buf
        for view in views:
            size = len(view)
            target[offset : offset + size] = view
            spans.append((offset, size))
            offset += -(-size // _ALIGN) * _ALIGN
        return spans

    def close(self) -> None:
        self.memory.close()


class Mapped:
    """The other side's segments, mapped once each by name (the last one of each slot)."""

    def __init__(self) -> None:
        self._segments: dict[int, _Segment] = {}

    def views(self, slot: int, name: str, spans: list[tuple[int, int]]) -> list[memoryview]:
        segment = self._segments.get(slot)
        if segment is None or segment.name != name:
            if segment is not None:
                segment.close()
            segment = self._segments[slot] = _Segment(name)
        memory = segment.buf
        return [memory[offset : offset + size] for offset, size in spans]

    def close(self) -> None:
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()


def pack(message: tuple[Any, ...], arena: Arena | None = None, slot: int = -1, *, handover: bool = False) -> bytes:
    """A frame: the message pickled, its large buffers in ``arena``, the slot's (inline when
    there is none). With ``handover``, buffers of :data:`HANDOVER` bytes and more in all go
    into a segment of their own instead, which the receiver takes (:func:`unpack`)."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(message, protocol=5, buffer_callback=buffers.append if arena is not None else None)
    if not buffers:
        return FRAME.pack(_HEAD.size + len(body)) + _HEAD.pack(slot, _INLINE, 0, 0) + body
    assert arena is not None
    if handover and sum(buffer.raw().nbytes for buffer in buffers) >= HANDOVER:
        gift = Arena(sum(-(-buffer.raw().nbytes // _ALIGN) * _ALIGN for buffer in buffers))
        try:
            spans, name, kind = gift.write(buffers), gift.name, _HANDED
        finally:
            gift.memory.close(unlink=False)
    else:
        spans = arena.write(buffers)  # first: a message too large for the arena grows it anew
        name, kind = arena.name, _ARENA
    named = name.encode()
    flat = struct.pack(f"<{2 * len(spans)}Q", *(number for span in spans for number in span))
    head = _HEAD.pack(slot, kind, len(named), len(spans))
    return b"".join((FRAME.pack(len(head) + len(named) + len(flat) + len(body)), head, named, flat, body))


def segment_of(body: bytes) -> str | None:
    """The name of the segment a frame's body (after its length) has its buffers in."""
    _, kind, length, _ = _HEAD.unpack_from(body)
    return None if kind == _INLINE else bytes(body[_HEAD.size : _HEAD.size + length]).decode()


def unpack(body: bytes, mapped: Mapped, *, copy: bool) -> tuple[Any, ...]:
    """A frame's message. Its buffers are views of the sender's arena, valid until the slot's
    next message; ``copy`` copies them out (what outlives the slot must). A handed-over
    segment's buffers are never copied: they are views of a mapping that is the message's own."""
    slot, kind, length, count = _HEAD.unpack_from(body)
    if kind == _INLINE:
        message: tuple[Any, ...] = pickle.loads(memoryview(body)[_HEAD.size :])
        return message
    offset = _HEAD.size + length
    name = bytes(body[_HEAD.size : offset]).decode()
    flat = struct.unpack_from(f"<{2 * count}Q", body, offset)
    spans = list(zip(flat[::2], flat[1::2], strict=True))
    inner = memoryview(body)[offset + 16 * count :]
    if kind == _HANDED:
        memory = _Segment(name, taken=True).buf  # lives on in the views, then is unmapped with them
        taken: tuple[Any, ...] = pickle.loads(inner, buffers=[memory[start : start + size] for start, size in spans])
        return taken
    views = mapped.views(slot, name, spans)
    buffers = [bytearray(view) for view in views] if copy else views
    message = pickle.loads(inner, buffers=buffers)
    if copy:
        for view in views:
            view.release()
    return message
