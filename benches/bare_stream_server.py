"""A bare grpc.aio server for inferd.v1.Inference/Stream: the limit of the Python gRPC stack
for a server-streaming call (benches/stream.py measures inferd's Stream against it).

Its Stream handler for model "ticks" streams ``chunks`` pieces ``gap_ms`` apart, as the
bench's Ticks workflow does. For any other model it splits the request's text into the pieces echo sends (a word with the
spaces before it), yields one StreamResponse a piece (model, id, index, text output) and a
final one, as inferd does; no engine, interceptor, health or reflection service. It runs on the
event loop ``inferd serve`` picks, with the same channel options (benches/bare_server.py).

    .venv/bin/python benches/bare_stream_server.py --address 127.0.0.1:PORT [--loop auto]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc

from inferd.config import EVENT_LOOPS
from inferd.server.app import event_loop_factory
from inferd.v1 import inference_pb2 as pb
from inferd.v1 import inference_pb2_grpc as pb_grpc

_PIECES = re.compile(r"\s*\S+")


class BareStream(pb_grpc.InferenceServicer):
    async def Stream(  # type: ignore[override]
        self, request: pb.InferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamResponse]:
        index = 0
        if request.model == "ticks":  # as benches/configs/stream_workflows.py's Ticks
            fields = request.parameters.fields
            gap_s = fields["gap_ms"].number_value / 1000 if "gap_ms" in fields else 0.1
            for index in range(int(fields["chunks"].number_value) if "chunks" in fields else 10):
                await asyncio.sleep(gap_s)
                yield pb.StreamResponse(model=request.model, id=request.id, index=index, output=pb.Payload(text=str(index)))
            yield pb.StreamResponse(model=request.model, id=request.id, index=index + 1, final=True)
            return
        for piece in _PIECES.findall(request.input.text):
            yield pb.StreamResponse(model=request.model, id=request.id, index=index, output=pb.Payload(text=piece))
            index += 1
        yield pb.StreamResponse(model=request.model, id=request.id, index=index, final=True)


async def serve(address: str) -> None:
    options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.so_reuseport", 1),
    ]
    server = grpc.aio.server(options=options)
    pb_grpc.add_InferenceServicer_to_server(BareStream(), server)
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"bare_stream_server: cannot listen on {address}")
    await server.start()
    print(f"bare stream server listening on {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50053")
    parser.add_argument("--loop", choices=EVENT_LOOPS, default="auto", help="event loop, as inferd serve's --loop")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
        runner.run(serve(args.address))


if __name__ == "__main__":
    main()
