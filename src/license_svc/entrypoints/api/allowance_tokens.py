"""GetAllowanceToken, GetSigningKeys and WatchSeatAllowance's `with_token` (rules §13): the
proto side of `license_svc.tokens`.

A token is minted from the same allowance `GetSeatAllowance` answers at the same position (from
the account cache when it is known current, else read on a thread, waiting for `min_position`),
at the same instant of the service's clock, so its claims equal that answer. A watch with
`with_token` sends a fresh token with every allowance, and when nothing changes it sends the same
allowance again with a new token at half the token's life: a watcher always holds a valid one
while the service is up, and one valid for at least half a TTL when it goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

from license_svc.adapters.clock import Clock
from license_svc.domain.tiers import Product
from license_svc.reads.watch import AllowanceWatch, Published
from license_svc.tokens.mint import AllowanceTokens, Minted

from . import convert
from .errors import NotServedHere
from .gen import licensing_pb2 as pb
from .streaming import Send
from .watch import seat_allowance

# A token refreshed sooner than this is not refreshed again: when `valid_until` is a second
# away, half the token's life is nothing, and the channel wakes at `valid_until` anyway.
MIN_REFRESH_SECONDS = 1.0


def signer(tokens: AllowanceTokens | None) -> AllowanceTokens:
    if tokens is None:
        raise NotServedHere("This server holds no signing key for allowance tokens")
    return tokens


def token_message(minted: Minted) -> pb.AllowanceToken:
    return pb.AllowanceToken(token=minted.token, expires_at=convert.timestamp(minted.expires_at))


def signing_keys(tokens: AllowanceTokens | None) -> pb.GetSigningKeysResponse:
    return pb.GetSigningKeysResponse(jwks=signer(tokens).keys.current.jwks_json())


async def watch_with_tokens(
    watch: AllowanceWatch,
    send: Send,
    tokens: AllowanceTokens,
    clock: Clock,
    account_id: str,
    product: Product,
    in_use: int,
) -> None:
    """One account's allowance as it changes, each message with a fresh token, and the same
    allowance with a new token whenever half a token's life passes without a change."""
    updates: AsyncIterator[Published] = watch.follow(account_id, product).__aiter__()
    # One pending read of the next change, kept across refreshes (waiting with a timeout
    # would cancel it, and with it the watcher's place on the channel).
    pending: asyncio.Future[Published] = asyncio.ensure_future(updates.__anext__())
    current: Published | None = None
    refresh: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=refresh)
            if pending in done:
                current = pending.result()
                pending = asyncio.ensure_future(updates.__anext__())
            assert current is not None  # the first message is the channel's first answer
            found, position = current.answer
            now = clock()
            minted = tokens.mint(account_id, product, found, position, now)
            response = pb.WatchSeatAllowanceResponse(
                allowance=seat_allowance(account_id, product, found, position, in_use),
                token=token_message(minted),
            )
            await send(response, position)
            refresh = max(MIN_REFRESH_SECONDS, minted.refresh_in(now))
    finally:
        pending.cancel()
        with suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
        aclose = getattr(updates, "aclose", None)
        if aclose is not None:
            await aclose()
