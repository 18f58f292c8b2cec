"""The A3C service's handlers: the servicer's methods, registered as the generated
add_ParameterServerServicer_to_server registers them, except that a method may answer with
bytes it serialized itself (a reply with weights, server.servicer), which go out as they
are."""

from __future__ import annotations

import grpc

from a3c.v1 import a3c_pb2 as pb
from a3c.v1 import a3c_pb2_grpc as pb_grpc


def _serialize(reply) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()


def add_to_server(servicer: pb_grpc.ParameterServerServicer, server: grpc.Server) -> None:
    """Registers servicer's methods on server (before it starts)."""
    service = pb.DESCRIPTOR.services_by_name["ParameterServer"]
    handlers = {}
    for method in service.methods:
        assert method.client_streaming == method.server_streaming, method.name
        kind = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=getattr(pb, method.input_type.name).FromString,
            response_serializer=_serialize,
        )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service.full_name, handlers)]
    )
