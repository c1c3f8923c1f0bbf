"""ActivationService: the Client Portal's Activate Key dialog."""

from __future__ import annotations

import grpc

from license_svc.access.fields import Fields
from license_svc.domain.tiers import Product, limits
from license_svc.keys.dialog import ActivationDialog, DialogRequest

from . import convert
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc


def dialog_request(request: pb.ValidateKeyRequest | pb.ActivateKeyRequest) -> DialogRequest:
    """A malformed account, session or product is a field violation and not a failed attempt
    (there is no valid session to count it against). The code is never a field violation:
    whatever it holds, however long, the dialog answers `Invalid key format` and counts it."""
    check = Fields()
    account_id = check.identifier(request.account_id, "account_id")
    session_id = check.identifier(request.session_id, "session_id")
    if request.product != pb.PRODUCT_INTEGRATIONS:
        check.add("product", "must be PRODUCT_INTEGRATIONS: this service activates Integrations")
    check.done()
    return DialogRequest(request.code, account_id, session_id, Product.INTEGRATIONS)


class ActivationServicer(pb_grpc.ActivationServiceServicer):
    def __init__(self, dialog: ActivationDialog) -> None:
        self._dialog = dialog

    def ValidateKey(
        self, request: pb.ValidateKeyRequest, context: grpc.ServicerContext
    ) -> pb.ValidateKeyResponse:
        key = self._dialog.validate(dialog_request(request))
        tier_limits = limits(key.product, key.tier)
        return pb.ValidateKeyResponse(
            product=convert.PRODUCTS[key.product],
            tier=convert.TIERS[key.tier],
            seats=key.seats,
            period_months=key.period_months,
            limits=convert.limits(tier_limits),
            invoices_per_month=tier_limits.invoices_per_month,
            sync=tier_limits.sync,
            hint=key.hint,
            key_id=str(key.id),
        )

    def ActivateKey(
        self, request: pb.ActivateKeyRequest, context: grpc.ServicerContext
    ) -> pb.ActivateKeyResponse:
        activation = self._dialog.activate(dialog_request(request))
        key = activation.key
        return pb.ActivateKeyResponse(
            entitlement=convert.entitlement(key),
            position=activation.position,
            already_active=activation.already_active,
            limits=convert.limits(limits(key.product, key.tier)),
        )
