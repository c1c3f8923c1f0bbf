"""A body that is not a valid protobuf message is the caller's mistake: INVALID_ARGUMENT naming the
message, on every method (unary and streaming, with or without a token), never INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2

from license_svc.access.auth import ACCESS, Role
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich
from tests.support import Client

# A field 1 whose length runs past the end of the body; a tag cut short.
GARBAGE = [b"\x0a\xff\xff\xff\xff\x0f", b"\xff"]
BAD_UTF8 = b"\x0a\x02\xff\xfe"  # field 1 holding bytes that are not UTF-8
ROLE_TOKENS = {
    Role.OPS: "ops",
    Role.PORTAL: "portal",
    Role.AUDITOR: "auditor",
    Role.INTEGRATIONS: "integrations",
    Role.RESELLER: "acme",
}


def methods() -> list[tuple[str, str, bool, bool]]:
    """(path, request message, server streaming, field 1 is a string) of every method."""
    found = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            first = method.input_type.fields_by_number.get(1)
            is_text = first is not None and first.type == FieldDescriptor.TYPE_STRING
            found.append((path, method.input_type.name, method.server_streaming, is_text))
    return found


def token_for(path: str) -> tuple[tuple[str, str], ...]:
    roles = ACCESS[path]
    role = next((r for r in ROLE_TOKENS if r in roles), None)
    return Client.as_(ROLE_TOKENS[role]) if role else ()


def call_raw(
    client: Client, path: str, streaming: bool, body: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        if streaming:
            list(client.channel.unary_stream(path, None, None)(body, metadata=metadata, timeout=10))
        else:
            client.channel.unary_unary(path, None, None)(body, metadata=metadata, timeout=10)
    return failure.value


@pytest.mark.parametrize(
    ("path", "message", "streaming", "is_text"), methods(), ids=[m[0] for m in methods()]
)
def test_an_undecodable_body_is_invalid_argument_naming_the_message(
    client: Client, path: str, message: str, streaming: bool, is_text: bool
) -> None:
    for body in [*GARBAGE, BAD_UTF8] if is_text else GARBAGE:
        error = rich(call_raw(client, path, streaming, body, token_for(path)))
        if error.code is grpc.StatusCode.UNIMPLEMENTED and error.message == "Method not found!":
            pytest.skip(f"{path} has no servicer yet")
        assert (error.code, error.message, error.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request is not a valid {message}",
            "INVALID_REQUEST",
        )


def test_without_a_token_an_undecodable_body_is_unauthenticated(client: Client) -> None:
    error = call_raw(client, "/fiscobridge.licensing.v1.KeyService/GetKey", False, b"\xff", ())
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


def test_health_decodes_its_own_requests_too(client: Client) -> None:
    for streaming, method in ((False, "Check"), (True, "Watch")):
        path = f"/grpc.health.v1.Health/{method}"
        error = rich(call_raw(client, path, streaming, b"\x0a\xff", ()))
        assert (error.code, error.message) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "request is not a valid HealthCheckRequest",
        )
    answer = client.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_decodes_its_own_requests_too(client: Client) -> None:
    path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    call = client.channel.stream_stream(path, None, None)
    with pytest.raises(grpc.RpcError) as failure:
        list(call(iter([b"\x0a\xff"]), timeout=10))
    error = rich(failure.value)
    assert (error.code, error.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "request is not a valid ServerReflectionRequest",
    )
