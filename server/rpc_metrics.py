"""The gRPC interceptor that feeds the RPC metrics of server.metrics: requests by status
code, latency and bytes of every call of the A3C service."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from server.metrics import ServerMetrics


def _method_name(handler_call_details) -> str:
    return handler_call_details.method.rsplit("/", 1)[-1]


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts requests, status codes, latency and bytes of every RPC of the A3C service."""

    def __init__(self, metrics: ServerMetrics, service: str):
        self._m = metrics
        self._prefix = f"/{service}/"

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefix):
            return handler
        method = _method_name(handler_call_details)
        codecs = self._counted(method, handler)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), *codecs
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, handler.stream_stream), *codecs
            )
        return handler

    def _counted(self, method: str, handler):
        """handler's request deserializer and response serializer, counting the bytes
        that pass through them (what the wire carries, parsed or not)."""
        received, sent = self._m.rpc_received.labels(method), self._m.rpc_sent.labels(method)
        parse = handler.request_deserializer or (lambda data: data)
        encode = handler.response_serializer or (lambda reply: reply)

        def deserialize(data: bytes):
            received.inc(len(data))
            return parse(data)

        def serialize(reply) -> bytes:
            data = encode(reply)
            sent.inc(len(data))
            return data

        return deserialize, serialize

    def _finish(self, method: str, context, start: float, ok: bool) -> None:
        code = "OK" if ok else _code_name(context)
        self._m.rpc_requests.labels(method, code).inc()
        self._m.rpc_duration.labels(method).observe(time.perf_counter() - start)

    def _unary(self, method: str, behavior: Callable):
        def wrapped(request, context):
            start = time.perf_counter()
            try:
                response = behavior(request, context)
            except BaseException:
                self._finish(method, context, start, ok=False)
                raise
            self._finish(method, context, start, ok=True)
            return response

        return wrapped

    def _stream(self, method: str, behavior: Callable):
        def wrapped(request_iterator, context):
            start = [time.perf_counter()]

            def requests():
                for request in request_iterator:
                    start[0] = time.perf_counter()
                    yield request

            try:
                for response in behavior(requests(), context):
                    self._finish(method, context, start[0], ok=True)
                    yield response
            except GeneratorExit:  # the worker closed its stream: no push is pending
                raise
            except BaseException:
                self._finish(method, context, start[0], ok=False)
                raise

        return wrapped


def _code_name(context) -> str:
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "CANCELLED" if not context.is_active() else "UNKNOWN"
