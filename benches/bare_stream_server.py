"""A bare grpc.aio server for inferd.v1.Inference/Stream: the limit of the Python gRPC stack
for a server-streaming call (benches/stream.py measures inferd's Stream against it).

Its Stream handler splits the request's text into the pieces echo sends (a word with the
spaces before it), yields one StreamResponse a piece (model, id, index, text output) and a
final one, as inferd's echo does (``delay_ms`` too: a pause before each piece); no engine, interceptor, health or reflection service. It runs on the
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
    async def Stream(
        self, request: pb.InferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamResponse]:
        index = 0
        fields = request.parameters.fields
        delay_s = fields["delay_ms"].number_value / 1000 if "delay_ms" in fields else 0.0
        for piece in _PIECES.findall(request.input.text):
            if delay_s:  # echo's delay_ms: a pause before each piece
                await asyncio.sleep(delay_s)
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
    pb_grpc.add_InferenceServicer_to_server(BareStream(), server)  # type: ignore[abstract]
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
