"""One server interceptor: authenticate, authorize, and turn every exception into a status.

It wraps each method handler (unary and server-streaming alike), so the wrapping runs in the
worker thread that serves the call: the caller's principal is put in a context variable for
the servicer, and nothing a servicer raises escapes as UNKNOWN. It also decodes the request
body itself (`decoding.py`), so a body that does not decode is INVALID_ARGUMENT, not INTERNAL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from . import decoding, errors
from .auth import TokenTable, authorize, current_principal, needs_token

log = logging.getLogger("license_svc.api")

Unary = Callable[[Any, grpc.ServicerContext], Any]
Streaming = Callable[[Any, grpc.ServicerContext], Iterator[Any]]


class GuardInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: TokenTable, observe: Callable[[str, str, float], None]) -> None:
        self._tokens = tokens
        self._observe = observe  # (method, outcome code name, seconds) → metrics
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        try:
            return self._wrapped[method]
        except KeyError:
            pass
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED; not cached, so unknown names cannot grow the dict
        wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not needs_token(method):
            return decoding.open_handler(method, handler)
        # request_deserializer=None: the behaviour gets the bytes and decodes inside its try.
        decode = decoding.decoder(method, handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary, decode),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream, decode),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        return handler  # the contract has no client-streaming methods

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        principal = self._tokens.authenticate(context.invocation_metadata())  # type: ignore[arg-type]
        authorize(method, principal)
        current_principal.set(principal)

    def _unary(self, method: str, inner: Unary, decode: decoding.Decode) -> Unary:
        def behaviour(raw: bytes, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                self._enter(method, context)  # a caller without a token learns nothing more
                response = inner(decode(raw), context)
            except Exception as error:
                self._fail(method, context, error, started)
            self._observe(method, "OK", time.perf_counter() - started)
            return response

        return behaviour

    def _streaming(self, method: str, inner: Streaming, decode: decoding.Decode) -> Streaming:
        def behaviour(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                self._enter(method, context)
                yield from inner(decode(raw), context)
            except Exception as error:
                self._fail(method, context, error, started)
            self._observe(method, "OK", time.perf_counter() - started)

        return behaviour

    def _fail(
        self, method: str, context: grpc.ServicerContext, error: Exception, started: float
    ) -> None:
        mapping = errors.mapping_for(error)
        status = errors.to_status(error)
        outcome = status.code.name  # type: ignore[attr-defined]
        if mapping is None:
            log.error("unhandled error in %s", method, exc_info=error)
        else:
            log.info("%s answered %s (%s)", method, outcome, mapping.reason)
        self._observe(method, outcome, time.perf_counter() - started)
        context.abort_with_status(status)
