"""Request bodies are decoded by our code, not by grpcio: a body that does not decode is the
caller's mistake (INVALID_ARGUMENT "request is not a valid <Message>"), never INTERNAL.

grpcio decodes with the handler's `request_deserializer` before any interceptor code runs and
answers a failure with INTERNAL ("Exception deserializing request!"). So the interceptor hands
grpcio a handler with `request_deserializer=None` (the behaviour receives the raw bytes) and
decodes inside its own `try`, with the deserializer it took from the original handler.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool

from . import errors

Decode = Callable[[Any], Any]


def message_name(method: str) -> str:
    """The request message's name of `/package.Service/Method`, from the descriptor pool that
    every generated module (ours, health, reflection) registers in."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", "."))
    except KeyError:
        return "request message"
    return str(found.input_type.name)


def decoder(method: str, deserializer: Callable[[bytes], Any] | None) -> Decode:
    name = message_name(method)

    def decode(raw: Any) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception:  # DecodeError, invalid UTF-8 in a string field, anything else
            raise errors.NotDecodable(f"request is not a valid {name}") from None

    return decode


def decoded_stream(requests: Iterator[Any], decode: Decode) -> Iterator[Any]:
    for raw in requests:
        yield decode(raw)


def open_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """For the methods that need no token (health, reflection): decode, nothing else."""
    decode = decoder(method, handler.request_deserializer)
    serialize = handler.response_serializer

    def refuse(context: grpc.ServicerContext, error: errors.NotDecodable) -> None:
        status = errors.to_status(error)
        context.abort(status.code, status.details, status.trailing_metadata)  # type: ignore[call-arg]

    async def refuse_async(context: Any, error: errors.NotDecodable) -> None:
        status = errors.to_status(error)
        await context.abort(status.code, status.details, status.trailing_metadata)

    if handler.unary_unary is not None:
        unary = handler.unary_unary

        def unary_unary(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                request = decode(raw)
            except errors.NotDecodable as error:
                refuse(context, error)
            return unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, None, serialize)
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        waiting = handler.unary_stream  # health's Watch: on the event loop (see server.py)

        async def unary_stream_async(raw: bytes, context: Any) -> AsyncIterator[Any]:
            try:
                request = decode(raw)
            except errors.NotDecodable as error:
                await refuse_async(context, error)
            async for response in waiting(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream_async, None, serialize)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        def unary_stream(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                request = decode(raw)
            except errors.NotDecodable as error:
                refuse(context, error)
            yield from streaming(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, None, serialize)
    if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
        talking: Any = handler.stream_stream  # the aio reflection servicer

        async def stream_stream_async(raws: Any, context: Any) -> AsyncIterator[Any]:
            async def decoded() -> AsyncIterator[Any]:
                async for raw in raws:
                    yield decode(raw)

            try:
                async for response in talking(decoded(), context):
                    yield response
            except errors.NotDecodable as error:
                await refuse_async(context, error)

        return grpc.stream_stream_rpc_method_handler(stream_stream_async, None, serialize)
    if handler.stream_stream is not None:
        bidi = handler.stream_stream

        def stream_stream(raws: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from bidi(decoded_stream(raws, decode), context)
            except errors.NotDecodable as error:
                refuse(context, error)

        return grpc.stream_stream_rpc_method_handler(stream_stream, None, serialize)
    return handler  # client streaming: nothing we serve has it
