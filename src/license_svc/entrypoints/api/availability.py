"""While the database is down, answer every business call UNAVAILABLE at once.

Without it a call taken during an outage waits for pool checkouts and statement retries until
the client's deadline, holding one of the server's few threads; a handful of them and even the
health check queues. The flag comes from the background check (`license_svc.adapters.dbhealth`),
so a call costs no database round trip to learn it. Installed inside the guard interceptor: the
guard still authenticates first and maps the `Unavailable` raised here (UNAVAILABLE + RetryInfo,
logged like any answer). Health and reflection are not gated.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from license_svc.access.auth import needs_token

from .errors import Unavailable

DOWN = "The database is unreachable"


class AvailabilityGate(grpc.aio.ServerInterceptor):
    def __init__(self, is_up: Callable[[], bool]) -> None:
        self._is_up = is_up

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:  # None (an unknown method: UNIMPLEMENTED) is allowed too
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not needs_token(method):
            return handler  # type: ignore[return-value]
        if handler.unary_unary is not None:
            unary = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                self._coroutine(unary)
                if inspect.iscoroutinefunction(unary)
                else self._unary(unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner = handler.unary_stream
            if inspect.isasyncgenfunction(inner):
                gated = self._async_generator(inner)
            elif inspect.iscoroutinefunction(inner):
                gated = self._coroutine(inner)  # a stream that writes with context.write
            else:
                gated = self._streaming(inner)
            return grpc.unary_stream_rpc_method_handler(
                gated,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _check(self) -> None:
        if not self._is_up():
            raise Unavailable(DOWN)

    def _unary(self, inner: Callable[[Any, Any], Any]) -> Any:
        def behaviour(request: Any, context: Any) -> Any:  # on a thread of the server's pool
            self._check()
            return inner(request, context)

        return behaviour

    def _streaming(self, inner: Callable[[Any, Any], Iterator[Any]]) -> Any:
        def behaviour(request: Any, context: Any) -> Iterator[Any]:
            self._check()
            yield from inner(request, context)

        return behaviour

    def _async_generator(self, inner: Callable[[Any, Any], AsyncIterator[Any]]) -> Any:
        async def behaviour(request: Any, context: Any) -> AsyncIterator[Any]:
            self._check()
            async for response in inner(request, context):
                yield response

        return behaviour

    def _coroutine(self, inner: Callable[[Any, Any], Awaitable[Any]]) -> Any:
        async def behaviour(request: Any, context: Any) -> Any:  # served on the event loop
            self._check()
            return await inner(request, context)

        return behaviour
