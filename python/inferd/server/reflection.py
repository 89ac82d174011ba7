"""Server reflection that tools can use: ``grpc.reflection.v1`` beside ``v1alpha``, and method
symbols that resolve.

grpcio-reflection serves only ``v1alpha``, and under the upb protobuf its lookup of a method
(``inferd.v1.Inference.Infer``) answers NOT_FOUND (grpc/grpc#34743), so ``ghz --call`` and
``grpcurl describe`` of a method failed without a .proto. Here a method's name falls back to
its service's file, and ``v1`` is served by the same servicer: its messages are v1alpha's,
field for field, under another package, so the same message classes read and write both; the
v1 file is added to the descriptor pool (a copy of v1alpha's, renamed) so that tools can
describe it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import _async, _base
from grpc_reflection.v1alpha import reflection_pb2 as alpha
from grpc_reflection.v1alpha import reflection_pb2_grpc as alpha_grpc

__all__ = ["V1_SERVICE", "V1ALPHA_SERVICE", "enable_reflection"]

V1ALPHA_SERVICE = alpha.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1_SERVICE = "grpc.reflection.v1.ServerReflection"


class _Servicer(_async.ReflectionServicer):  # type: ignore[misc]
    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if response.HasField("error_response"):
            service, _, method = fully_qualified_name.rpartition(".")
            try:
                descriptor = self._pool.FindServiceByName(service)
            except KeyError:
                return response
            if method in descriptor.methods_by_name:
                return _base._file_descriptor_response(descriptor.file, request)
        return response


def _add_v1_file(pool: Any) -> None:
    """grpc/reflection/v1/reflection.proto in ``pool``: v1alpha's file, renamed."""
    try:
        pool.FindFileByName("grpc/reflection/v1/reflection.proto")
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    alpha.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(server: grpc.aio.Server, services: Iterable[str]) -> None:
    """Serves reflection (v1 and v1alpha) on ``server`` for ``services`` and itself."""
    pool = descriptor_pool.Default()
    _add_v1_file(pool)
    servicer = _Servicer([*services, V1ALPHA_SERVICE, V1_SERVICE], pool=pool)
    alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=alpha.ServerReflectionRequest.FromString,
        response_serializer=alpha.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": handler}),))
