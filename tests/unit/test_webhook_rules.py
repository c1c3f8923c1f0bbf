"""The webhooks' pure rules: secrets and signatures, which URLs may be called, the retry
schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag

from license_svc.webhooks import addresses
from license_svc.webhooks.addresses import UrlRefused, check, checked_address, parse
from license_svc.webhooks.messages import Message, message_id
from license_svc.webhooks.sender import Policy, backoff
from license_svc.webhooks.signing import SecretBox, headers, new_secret, sign


def test_a_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body_keyed_by_the_decoded_secret() -> (
    None
):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example
    body = b'{"test": 2432232314}'
    expected = base64.b64encode(
        hmac.new(
            base64.b64decode(secret[6:]),
            b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body,
            hashlib.sha256,
        ).digest()
    ).decode()
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == f"v1,{expected}"
    assert expected == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the spec's own answer
    sent = headers(secret, "msg_1", 7, body)
    assert sent["webhook-id"] == "msg_1" and sent["webhook-timestamp"] == "7"


def test_a_sealed_secret_holds_no_plaintext_and_opens_only_for_its_endpoint() -> None:
    box = SecretBox(b"server-secret-0123456789")
    secret = new_secret()
    sealed = box.seal(secret, "endpoint-a")
    assert secret.encode() not in sealed and secret[6:].encode() not in sealed
    assert box.open(sealed, "endpoint-a") == secret
    with pytest.raises(InvalidTag):
        box.open(sealed, "endpoint-b")
    with pytest.raises(InvalidTag):
        SecretBox(b"another-server-secret-xyz").open(sealed, "endpoint-a")


def test_a_message_id_is_stable_per_type_position_and_endpoint() -> None:
    assert message_id("key.activated", 7, "e1") == message_id("key.activated", 7, "e1")
    assert message_id("key.activated", 7, "e1") != message_id("key.activated", 7, "e2")
    assert message_id("key.activated", 7, "e1") != message_id("key.activated", 8, "e1")
    assert message_id("key.activated", 7, "e1") != message_id("subscription.expiring_soon", 7, "e1")


def test_a_body_is_id_type_timestamp_and_data() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    mid, body = Message("key.revoked", 9, "acme", when, {"key_id": "k"}).body("e1")
    assert body == (
        b'{"data":{"key_id":"k"},"id":"' + mid.encode() + b'","timestamp":"2026-03-01T12:00:00Z",'
        b'"type":"key.revoked"}'
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.0.10/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://100.64.0.1/",
        "https://localhost/hook",
    ],
)
def test_private_and_loopback_addresses_are_refused_when_the_switch_is_off(url: str) -> None:
    with pytest.raises(UrlRefused, match="not a public address"):
        check(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://203.0.113.9/", "https://"),
        ("ftp://203.0.113.9/", "https://"),
        ("https://user:pw@203.0.113.9/", "user name"),
        ("https:///path", "name a host"),
        ("https://203.0.113.9/a b", "spaces"),
        ("https://203.0.113.9/\x00", "control"),
        ("https://" + "a" * 3000 + ".com/", "at most"),
        ("https://203.0.113.9:99999/", "not a URL"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why):
        parse(url, allow_private=False)


def test_the_private_switch_allows_http_and_loopback() -> None:
    target = check("http://127.0.0.1:8080/h?x=1", allow_private=True)
    assert target.url_for("127.0.0.1") == "http://127.0.0.1:8080/h?x=1"
    assert target.authority == "127.0.0.1:8080"


def test_a_name_is_refused_if_any_address_it_resolves_to_is_private() -> None:
    target = parse("https://hooks.example.com/in", allow_private=False)
    assert checked_address(target, False, lambda host, port: ["93.184.215.14"]) == "93.184.215.14"
    with pytest.raises(UrlRefused, match=r"10\.0\.0\.7"):
        checked_address(target, False, lambda host, port: ["93.184.215.14", "10.0.0.7"])


def test_each_send_connects_to_the_address_it_checked_not_to_a_second_lookup() -> None:
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])  # a rebinding name: public, then private
    target = parse("https://rebind.example.com/in", allow_private=False)
    resolve = lambda host, port: next(answers)  # noqa: E731
    assert target.url_for(checked_address(target, False, resolve)) == "https://93.184.215.14:443/in"
    with pytest.raises(UrlRefused):
        checked_address(target, False, resolve)


def test_a_public_address_literal_needs_no_lookup() -> None:
    def refuse(host: str, port: int) -> list[str]:
        raise AssertionError("no lookup for an address")

    assert checked_address(parse("https://93.184.215.14/", False), False, refuse) == "93.184.215.14"
    assert addresses.is_public("8.8.8.8") and not addresses.is_public("fe80::1")


def test_the_retry_wait_doubles_with_jitter_up_to_six_hours() -> None:
    policy = Policy(retry_base=5.0)
    assert backoff(policy, 1, draw=0.0) == timedelta(seconds=2.5)
    assert backoff(policy, 1, draw=0.999999) < timedelta(seconds=5)
    assert backoff(policy, 2, draw=0.0) == timedelta(seconds=5)
    assert backoff(policy, 30, draw=0.999999) <= timedelta(hours=6)
    assert backoff(policy, 30, draw=0.0) == timedelta(hours=3)


def test_retry_after_lengthens_the_wait_but_never_beyond_a_day() -> None:
    policy = Policy(retry_base=5.0)
    assert backoff(policy, 1, 0.0, timedelta(minutes=10)) == timedelta(minutes=10)
    assert backoff(policy, 1, 0.0, timedelta(days=30)) == timedelta(days=1)
    assert backoff(policy, 12, 0.0, timedelta(seconds=1)) > timedelta(seconds=1)
