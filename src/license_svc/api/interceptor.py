"""One server interceptor: authenticate, authorize, and turn every exception into a status.

It wraps each method handler (unary and server-streaming alike), so the wrapping runs in the
worker thread that serves the call: the caller's principal is put in a context variable for
the servicer, and nothing a servicer raises escapes as UNKNOWN. It also decodes the request
body itself (`decoding.py`), so a body that does not decode is INVALID_ARGUMENT, not INTERNAL.
Every call is also reported to an `Observer` (metrics, the one log line per call) as a `Call`,
and answers with the caller's `x-request-id` (or one made up for it) in its trailing metadata.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from . import decoding, errors
from .auth import TokenTable, authorize, current_principal, needs_token

log = logging.getLogger("license_svc.api")

Unary = Callable[[Any, grpc.ServicerContext], Any]
Streaming = Callable[[Any, grpc.ServicerContext], Iterator[Any]]
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128  # a caller's id longer than this is replaced, not echoed


@dataclass(slots=True)
class Call:
    """One call as the observer sees it; never holds a request field (no code can leak)."""

    method: str  # the full name, /package.Service/Method
    grpc_type: str  # "unary" or "server_stream", as the gRPC ecosystem's metrics name them
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    code: str = "OK"
    reason: str = ""  # the error table's reason, for refusals
    sent: int = 0  # response messages sent
    role: str = ""
    reseller_id: str = ""

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


class Observer(Protocol):
    def started(self, call: Call) -> None: ...
    def sent(self, call: Call) -> None: ...  # one more message of a stream went out
    def handled(self, call: Call) -> None: ...


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    pass


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID and isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID:
            return value
    return uuid.uuid4().hex


class GuardInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: TokenTable, observer: Observer) -> None:
        self._tokens = tokens
        self._observer = observer
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

    def _begin(self, method: str, grpc_type: str, context: grpc.ServicerContext) -> Call:
        call = Call(method, grpc_type, _request_id(context))
        self._observer.started(call)
        return call

    def _enter(self, call: Call, context: grpc.ServicerContext) -> None:
        principal = self._tokens.authenticate(context.invocation_metadata())  # type: ignore[arg-type]
        call.role, call.reseller_id = principal.role.value, principal.reseller_id
        authorize(call.method, principal)
        current_principal.set(principal)

    def _done(self, call: Call, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(((REQUEST_ID, call.request_id),))
        self._observer.handled(call)

    def _unary(self, method: str, inner: Unary, decode: decoding.Decode) -> Unary:
        def behaviour(raw: bytes, context: grpc.ServicerContext) -> Any:
            call = self._begin(method, "unary", context)
            try:
                self._enter(call, context)  # a caller without a token learns nothing more
                response = inner(decode(raw), context)
            except Exception as error:
                self._fail(call, context, error)
            call.sent = 1
            self._done(call, context)
            return response

        return behaviour

    def _streaming(self, method: str, inner: Streaming, decode: decoding.Decode) -> Streaming:
        def behaviour(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
            call = self._begin(method, "server_stream", context)
            try:
                self._enter(call, context)
                for message in inner(decode(raw), context):
                    call.sent += 1
                    self._observer.sent(call)
                    yield message
            except GeneratorExit:  # the client went away: no status to send
                call.code = "CANCELLED"
                self._observer.handled(call)
                raise
            except Exception as error:
                self._fail(call, context, error)
            self._done(call, context)

        return behaviour

    def _fail(self, call: Call, context: grpc.ServicerContext, error: Exception) -> None:
        mapping = errors.mapping_for(error)
        status = errors.to_status(error)
        call.code = status.code.name  # type: ignore[attr-defined]
        call.reason = mapping.reason if mapping else errors.INTERNAL.reason
        if mapping is None:
            log.error("unhandled error in %s", call.method, exc_info=error)
        self._observer.handled(call)
        trailing = (*(status.trailing_metadata or ()), (REQUEST_ID, call.request_id))
        context.abort_with_status(_Status(status.code, status.details, trailing))
