"""Transport security and callers: TLS or mutual TLS credentials, and a bearer-token check."""

from __future__ import annotations

import hmac
from pathlib import Path

import grpc

from a3c.config import ServerConfig, read_token

HEALTH_PREFIX = "/grpc.health.v1.Health/"


def server_credentials(scfg: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; client certificates are required
    when a client CA is (mutual TLS). None: plaintext."""
    if not scfg.tls_cert:
        if scfg.tls_client_ca:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        return None
    pair = (Path(scfg.tls_key).read_bytes(), Path(scfg.tls_cert).read_bytes())
    client_ca = Path(scfg.tls_client_ca).read_bytes() if scfg.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def server_token(scfg: ServerConfig) -> str:
    return read_token(scfg.auth_token, scfg.auth_token_file)


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as handler that answers UNAUTHENTICATED."""

    def abort(_request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort)
    return grpc.stream_stream_rpc_method_handler(abort)


class TokenInterceptor(grpc.ServerInterceptor):
    """Lets through calls whose `authorization` metadata is `Bearer <token>`; health checks
    always pass so that probes need no secret."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_PREFIX):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        sent = metadata.get("authorization", "")
        if hmac.compare_digest(sent.encode(), self._expected):
            return handler
        reason = "missing bearer token" if not sent else "wrong bearer token"
        return _deny(handler, reason)
