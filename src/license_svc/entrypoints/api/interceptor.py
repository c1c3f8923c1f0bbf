"""One server interceptor: authenticate, authorize, and turn every exception into a status.

It wraps each method handler (unary and server-streaming alike), so the wrapping runs where
the call is served: a unary call on a thread of the server's pool, a stream (a coroutine) on
the event loop of the `grpc.aio` server. The caller's principal is put in a context variable
for the servicer, and nothing a servicer raises escapes as UNKNOWN. It also decodes the request
body itself (`decoding.py`), so a body that does not decode is INVALID_ARGUMENT, not INTERNAL.
Every call is also reported to an `Observer` (metrics, the one log line per call) as a `Call`,
and answers with the caller's `x-request-id` (or one made up for it) in its trailing metadata.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from license_svc.access.auth import TokenTable, authorize, current_principal, needs_token
from license_svc.adapters.pools import call_deadline

from . import decoding, errors

log = logging.getLogger("license_svc.entrypoints.api")

Unary = Callable[[Any, grpc.ServicerContext], Any]
Streaming = Callable[[Any, grpc.ServicerContext], Iterator[Any]]
Coroutine = Callable[[Any, Any], Awaitable[None]]  # a stream that writes with context.write
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
    """The caller's request id if it is printable ASCII without spaces (so it cannot forge a
    log line), else one made up for the call."""
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID and isinstance(value, str) and _printable(value):
            return value
    return _made_up_id()


def _ids() -> Callable[[], str]:
    """Request ids for callers that sent none: a random prefix per process and a counter (as
    unique as a uuid4 within the fleet, without a system call per call)."""
    prefix = uuid.uuid4().hex[:16]
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter):016x}"


_made_up_id = _ids()


def _printable(value: str) -> bool:
    return (
        0 < len(value) <= MAX_REQUEST_ID
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


class GuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: TokenTable, observer: Observer) -> None:
        self._tokens = tokens
        self._observer = observer
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:  # None (an unknown method: UNIMPLEMENTED) is allowed too
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        try:
            return self._wrapped[method]
        except KeyError:
            pass
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # type: ignore[return-value]  # UNIMPLEMENTED; not cached, so unknown names cannot grow the dict
        wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not needs_token(method):
            return decoding.open_handler(method, handler)
        # request_deserializer=None: the behaviour gets the bytes and decodes inside its try.
        decode = decoding.decoder(method, handler.request_deserializer)
        if handler.unary_unary is not None:
            unary = handler.unary_unary
            wrapped: Any = (  # a coroutine (an answer from memory) runs on the event loop
                self._unary_coroutine(method, unary, decode)
                if inspect.iscoroutinefunction(unary)
                else self._unary(method, unary, decode)
            )
            return grpc.unary_unary_rpc_method_handler(
                wrapped,
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner = handler.unary_stream
            if inspect.iscoroutinefunction(inner):
                behaviour: Any = self._coroutine(method, inner, decode)
            else:  # a sync generator holds a pool thread for its life: none of ours is one
                behaviour = self._streaming(method, inner, decode)
            return grpc.unary_stream_rpc_method_handler(
                behaviour,
                request_deserializer=None,
                response_serializer=_passing_bytes(handler.response_serializer),
            )
        return handler  # the contract has no client-streaming methods

    def _begin(self, method: str, grpc_type: str, context: grpc.ServicerContext) -> Call:
        call = Call(method, grpc_type, _request_id(context))
        self._observer.started(call)
        return call

    def _enter(self, call: Call, context: grpc.ServicerContext) -> None:
        metadata = context.invocation_metadata()
        principal = self._tokens.authenticate(metadata, context.auth_context)  # type: ignore[arg-type]
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
                _bound_by_deadline(context)
                self._enter(call, context)  # a caller without a token learns nothing more
                response = inner(decode(raw), context)
            except Exception as error:
                self._fail(call, context, error)
            call.sent = 1
            self._done(call, context)
            return response

        return behaviour

    def _unary_coroutine(self, method: str, inner: Any, decode: decoding.Decode) -> Any:
        async def behaviour(raw: bytes, context: Any) -> Any:
            call = self._begin(method, "unary", context)
            _bound_by_deadline(context)  # its database work ends with its deadline
            response = await self._guarded(call, context, lambda: inner(decode(raw), context))
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
                self._cancelled(call)
                raise
            except Exception as error:
                self._fail(call, context, error)
            self._done(call, context)

        return behaviour

    def _coroutine(self, method: str, inner: Coroutine, decode: decoding.Decode) -> Coroutine:
        """A stream on the event loop (see `streaming.py`): it writes with `context.write`,
        counted here through a thin wrapper of the context."""

        async def behaviour(raw: bytes, context: Any) -> None:
            call = self._begin(method, "server_stream", context)
            counted = _Counted(context, call, self._observer)
            await self._guarded(call, context, lambda: inner(decode(raw), counted))
            self._done(call, context)

        return behaviour

    async def _guarded(self, call: Call, context: Any, work: Callable[[], Awaitable[Any]]) -> Any:
        """Authorize, then await `work`; every exception becomes the call's status (a
        cancelled call has none to send)."""
        try:
            self._enter(call, context)
            return await work()
        except asyncio.CancelledError:  # the client went away: no status to send
            self._cancelled(call)
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await context.abort(*self._failed(call, error))

    def _cancelled(self, call: Call) -> None:
        call.code = "CANCELLED"
        self._observer.handled(call)

    def _fail(self, call: Call, context: grpc.ServicerContext, error: Exception) -> None:
        # `abort`, not `abort_with_status`: the aio server's context for sync handlers has only
        # `abort` (it raises, as the sync server's does).
        context.abort(*self._failed(call, error))  # type: ignore[call-arg]

    def _failed(self, call: Call, error: Exception) -> _Status:
        mapping = errors.mapping_for(error)
        status = errors.to_status(error)
        call.code = status.code.name  # type: ignore[attr-defined]
        call.reason = mapping.reason if mapping else errors.INTERNAL.reason
        if mapping is None:
            log.error("unhandled error in %s", call.method, exc_info=error)
        self._observer.handled(call)
        trailing = (*(status.trailing_metadata or ()), (REQUEST_ID, call.request_id))
        return _Status(status.code, status.details, trailing)


def _bound_by_deadline(context: Any) -> None:
    """A unary call's database work ends with its deadline (`adapters.pools`). Set for every
    call: a pool thread keeps its context variables from one call to the next."""
    left = context.time_remaining()
    call_deadline.set(None if left is None else time.monotonic() + left)


def _passing_bytes(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A stream's serializer that lets an already encoded message through: a change written to
    many watchers is encoded once (`watch.py`)."""
    if serialize is None:
        return None

    def encode(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)

    return encode


class _Counted:
    """A stream's context whose `write` reports each message to the observer."""

    def __init__(self, context: Any, call: Call, observer: Observer) -> None:
        self._context = context
        self._call = call
        self._observer = observer

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._call.sent += 1
        self._observer.sent(self._call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
