"""An OTLP/gRPC trace receiver that only counts what it gets: where the bench's traced inferd
sends its spans (a process of its own, as a collector would be).

    python -m benches.serve.otlp_sink PORT
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self.lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{int(sys.argv[1])}")
    server.start()
    print("otlp sink ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
