"""Structured logs (rules §10): under `serve` one JSON object a line, one line per call, with the
caller's x-request-id (made up when absent, and returned in the response metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import unique
from tests.support import Client, ServerProcess


def lines_of(server: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log_text().splitlines() if line.strip()]


def test_every_log_line_is_json_and_carries_the_callers_request_id(
    database_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(database_url, tmp_path / "server.log")
    try:
        request_id = unique("req")
        key = server.client.issue(1).keys[0]
        answer, call = server.client.keys.GetKey.with_call(
            pb.GetKeyRequest(key_id=key.key_id),
            metadata=(*Client.as_("acme"), ("x-request-id", request_id)),
            timeout=10,
        )
        assert answer.key.key_id == key.key_id
        assert ("x-request-id", request_id) in call.trailing_metadata()
        with pytest.raises(grpc.RpcError) as refused:
            server.client.activate(f"INT-{'A' * 12}", unique("acct"))
        trailing: Any = refused.value.trailing_metadata()  # type: ignore[attr-defined]
        made_up = dict(trailing)["x-request-id"]
    finally:
        server.stop()
    lines = lines_of(server)  # json.loads of every line: each one parses
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert len(mine) == 1  # one line per call
    assert mine[0]["method"] == "GetKey"
    assert mine[0]["grpc_code"] == "OK"
    assert mine[0]["role"] == "reseller"
    assert mine[0]["reseller_id"] == "acme"
    assert isinstance(mine[0]["duration_ms"], float)
    refusal = [line for line in lines if line.get("request_id") == made_up]
    assert len(refusal) == 1
    assert refusal[0]["grpc_code"] in {"INVALID_ARGUMENT", "FAILED_PRECONDITION"}
    assert refusal[0]["role"] == "portal"
