"""The Activate Key dialog (rules §4): ValidateKey and ActivateKey behind the attempt limiter.

Order matters: a blocked session is refused before the code is even parsed, so a blocked
attacker learns nothing more; a mistyped code is refused without a database read; every one of
the three dialog errors counts as one failed attempt of the session and the account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from uuid import UUID

from license_svc.adapters.application import KeyNotFound
from license_svc.domain import codes
from license_svc.domain.key import ActivationKey, KeyNotAvailable
from license_svc.domain.tiers import Product
from license_svc.keys.app import Activation, LicensingApp

T = TypeVar("T")

log = logging.getLogger("license_svc.keys.dialog")


class WrongProduct(Exception):
    reason = "WRONG_PRODUCT"  # in the API's error details and the failed-attempt audit

    def __init__(self, key_product: Product, dialog_product: Product) -> None:
        super().__init__(
            f"This is a {key_product.display} key. "
            f"{dialog_product.prefix}- keys activate {dialog_product.display} only."
        )
        self.key_product = key_product
        self.dialog_product = dialog_product


# The dialog's three errors: each is one failed attempt, recorded with its `reason`.
DIALOG_FAILURES = (codes.InvalidKeyFormat, WrongProduct, KeyNotAvailable)


@dataclass(frozen=True)
class DialogRequest:
    code: str
    account_id: str
    session_id: str
    product: Product


class Attempts(Protocol):
    """The failed-attempt limiter as the dialog uses it (`license_svc.attempts.limiter`):
    `begin` reserves an attempt or raises while the session or account is blocked."""

    def begin(self, account_id: str, session_id: str, method: str) -> int: ...

    def failed(self, attempt: int, reason: str, key_id: UUID | None = None) -> None: ...

    def ended(self, attempt: int) -> None: ...


class ActivationDialog:
    def __init__(self, app: LicensingApp, limiter: Attempts) -> None:
        self._app = app
        self._limiter = limiter

    def validate(self, request: DialogRequest) -> ActivationKey:
        return self._attempt("ValidateKey", request, self._validate)

    def activate(self, request: DialogRequest) -> Activation:
        return self._attempt("ActivateKey", request, self._activate)

    def _validate(self, request: DialogRequest, key_id: UUID) -> ActivationKey:
        try:
            key = self._app.get_key(key_id)
        except KeyNotFound:
            raise KeyNotAvailable() from None
        key.check_redeemable_by(request.account_id, self._app.clock())
        return key

    def _activate(self, request: DialogRequest, key_id: UUID) -> Activation:
        return self._app.activate(key_id, request.account_id)

    def _attempt(
        self,
        method: str,
        request: DialogRequest,
        action: Callable[[DialogRequest, UUID], T],
    ) -> T:
        attempt = self._limiter.begin(request.account_id, request.session_id, method)
        key_id = None
        try:
            parsed = codes.parse(request.code)
            key_product = Product(codes.PREFIXES[parsed.prefix])
            if key_product is not request.product:
                raise WrongProduct(key_product, request.product)
            key_id = self._app.key_id_of(parsed)
            result = action(request, key_id)
        except DIALOG_FAILURES as failure:  # the customer's failed attempt
            self._limiter.failed(attempt, failure.reason, key_id)
            raise
        except BaseException:
            # Not the customer's failure (the store was unreachable, the call was cancelled):
            # give the reservation back if we can; if not, it counts until its window ends.
            try:
                self._limiter.ended(attempt)
            except Exception as error:
                log.warning("could not end attempt %s: %s", attempt, error)
            raise
        self._limiter.ended(attempt)
        return result
