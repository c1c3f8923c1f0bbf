import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Product(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_UNSPECIFIED: _ClassVar[Product]
    PRODUCT_INTEGRATIONS: _ClassVar[Product]
    PRODUCT_CLOUD_POS: _ClassVar[Product]

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    TIER_STARTER: _ClassVar[Tier]
    TIER_GROWTH: _ClassVar[Tier]
    TIER_SCALE: _ClassVar[Tier]

class KeyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_STATUS_UNSPECIFIED: _ClassVar[KeyStatus]
    KEY_STATUS_ISSUED: _ClassVar[KeyStatus]
    KEY_STATUS_ACTIVATED: _ClassVar[KeyStatus]
    KEY_STATUS_REVOKED: _ClassVar[KeyStatus]
    KEY_STATUS_EXPIRED: _ClassVar[KeyStatus]

class EntitlementSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTITLEMENT_SOURCE_UNSPECIFIED: _ClassVar[EntitlementSource]
    ENTITLEMENT_SOURCE_KEY: _ClassVar[EntitlementSource]
    ENTITLEMENT_SOURCE_PLAN: _ClassVar[EntitlementSource]

class PlanEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_EVENT_KIND_UNSPECIFIED: _ClassVar[PlanEventKind]
    PLAN_EVENT_KIND_STARTED: _ClassVar[PlanEventKind]
    PLAN_EVENT_KIND_RENEWED: _ClassVar[PlanEventKind]
    PLAN_EVENT_KIND_CHANGED: _ClassVar[PlanEventKind]
    PLAN_EVENT_KIND_CANCELLED: _ClassVar[PlanEventKind]

class WebhookDeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_DELIVERY_STATE_UNSPECIFIED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_PENDING: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_DELIVERED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_FAILED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_CANCELLED: _ClassVar[WebhookDeliveryState]
PRODUCT_UNSPECIFIED: Product
PRODUCT_INTEGRATIONS: Product
PRODUCT_CLOUD_POS: Product
TIER_UNSPECIFIED: Tier
TIER_STARTER: Tier
TIER_GROWTH: Tier
TIER_SCALE: Tier
KEY_STATUS_UNSPECIFIED: KeyStatus
KEY_STATUS_ISSUED: KeyStatus
KEY_STATUS_ACTIVATED: KeyStatus
KEY_STATUS_REVOKED: KeyStatus
KEY_STATUS_EXPIRED: KeyStatus
ENTITLEMENT_SOURCE_UNSPECIFIED: EntitlementSource
ENTITLEMENT_SOURCE_KEY: EntitlementSource
ENTITLEMENT_SOURCE_PLAN: EntitlementSource
PLAN_EVENT_KIND_UNSPECIFIED: PlanEventKind
PLAN_EVENT_KIND_STARTED: PlanEventKind
PLAN_EVENT_KIND_RENEWED: PlanEventKind
PLAN_EVENT_KIND_CHANGED: PlanEventKind
PLAN_EVENT_KIND_CANCELLED: PlanEventKind
WEBHOOK_DELIVERY_STATE_UNSPECIFIED: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_PENDING: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_DELIVERED: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_FAILED: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_CANCELLED: WebhookDeliveryState

class TierLimits(_message.Message):
    __slots__ = ("tier", "name", "invoices_per_month", "sync")
    TIER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INVOICES_PER_MONTH_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    name: str
    invoices_per_month: int
    sync: str
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., name: _Optional[str] = ..., invoices_per_month: _Optional[int] = ..., sync: _Optional[str] = ...) -> None: ...

class Entitlement(_message.Message):
    __slots__ = ("key_id", "hint", "tier", "seats", "period_starts_at", "period_ends_at", "account_id", "product", "reseller_id", "source", "subscription_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    hint: str
    tier: Tier
    seats: int
    period_starts_at: _timestamp_pb2.Timestamp
    period_ends_at: _timestamp_pb2.Timestamp
    account_id: str
    product: Product
    reseller_id: str
    source: EntitlementSource
    subscription_id: str
    def __init__(self, key_id: _Optional[str] = ..., hint: _Optional[str] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., period_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., reseller_id: _Optional[str] = ..., source: _Optional[_Union[EntitlementSource, str]] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class Key(_message.Message):
    __slots__ = ("key_id", "hint", "product", "tier", "seats", "period_months", "reseller_id", "batch_id", "status", "account_id", "issued_at", "activated_at", "period_starts_at", "period_ends_at", "revoked_at", "revoked_reason", "revoked_by", "expired_at", "version")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    hint: str
    product: Product
    tier: Tier
    seats: int
    period_months: int
    reseller_id: str
    batch_id: str
    status: KeyStatus
    account_id: str
    issued_at: _timestamp_pb2.Timestamp
    activated_at: _timestamp_pb2.Timestamp
    period_starts_at: _timestamp_pb2.Timestamp
    period_ends_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    revoked_reason: str
    revoked_by: str
    expired_at: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, key_id: _Optional[str] = ..., hint: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., period_months: _Optional[int] = ..., reseller_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., status: _Optional[_Union[KeyStatus, str]] = ..., account_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_reason: _Optional[str] = ..., revoked_by: _Optional[str] = ..., expired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class IssueKeysRequest(_message.Message):
    __slots__ = ("reseller_id", "product", "tier", "seats", "period_months", "count", "request_id")
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    reseller_id: str
    product: Product
    tier: Tier
    seats: int
    period_months: int
    count: int
    request_id: str
    def __init__(self, reseller_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., period_months: _Optional[int] = ..., count: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class IssuedKey(_message.Message):
    __slots__ = ("key_id", "code", "hint")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    code: str
    hint: str
    def __init__(self, key_id: _Optional[str] = ..., code: _Optional[str] = ..., hint: _Optional[str] = ...) -> None: ...

class IssueKeysResponse(_message.Message):
    __slots__ = ("batch_id", "keys", "position", "replayed")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    keys: _containers.RepeatedCompositeFieldContainer[IssuedKey]
    position: int
    replayed: bool
    def __init__(self, batch_id: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[IssuedKey, _Mapping]]] = ..., position: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("key_id", "code", "reason")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    code: str
    reason: str
    def __init__(self, key_id: _Optional[str] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeKeyResponse(_message.Message):
    __slots__ = ("key", "position")
    KEY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    key: Key
    position: int
    def __init__(self, key: _Optional[_Union[Key, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class GetKeyRequest(_message.Message):
    __slots__ = ("key_id", "code")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    code: str
    def __init__(self, key_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class GetKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: Key
    def __init__(self, key: _Optional[_Union[Key, _Mapping]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "reseller_id", "batch_id", "min_position")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: KeyStatus
    reseller_id: str
    batch_id: str
    min_position: int
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[KeyStatus, str]] = ..., reseller_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., min_position: _Optional[int] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token", "position")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[Key]
    next_page_token: str
    position: int
    def __init__(self, keys: _Optional[_Iterable[_Union[Key, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class ValidateKeyRequest(_message.Message):
    __slots__ = ("code", "account_id", "session_id", "product")
    CODE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    code: str
    account_id: str
    session_id: str
    product: Product
    def __init__(self, code: _Optional[str] = ..., account_id: _Optional[str] = ..., session_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ...) -> None: ...

class ValidateKeyResponse(_message.Message):
    __slots__ = ("product", "tier", "seats", "period_months", "limits", "invoices_per_month", "sync", "hint", "key_id")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MONTHS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    INVOICES_PER_MONTH_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    product: Product
    tier: Tier
    seats: int
    period_months: int
    limits: TierLimits
    invoices_per_month: int
    sync: str
    hint: str
    key_id: str
    def __init__(self, product: _Optional[_Union[Product, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., period_months: _Optional[int] = ..., limits: _Optional[_Union[TierLimits, _Mapping]] = ..., invoices_per_month: _Optional[int] = ..., sync: _Optional[str] = ..., hint: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class ActivateKeyRequest(_message.Message):
    __slots__ = ("code", "account_id", "session_id", "product")
    CODE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    code: str
    account_id: str
    session_id: str
    product: Product
    def __init__(self, code: _Optional[str] = ..., account_id: _Optional[str] = ..., session_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ...) -> None: ...

class ActivateKeyResponse(_message.Message):
    __slots__ = ("entitlement", "position", "already_active", "limits")
    ENTITLEMENT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    entitlement: Entitlement
    position: int
    already_active: bool
    limits: TierLimits
    def __init__(self, entitlement: _Optional[_Union[Entitlement, _Mapping]] = ..., position: _Optional[int] = ..., already_active: _Optional[bool] = ..., limits: _Optional[_Union[TierLimits, _Mapping]] = ...) -> None: ...

class GetSubscriptionSummaryRequest(_message.Message):
    __slots__ = ("account_id", "product", "min_position", "as_of")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    min_position: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., min_position: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscriptionSummary(_message.Message):
    __slots__ = ("account_id", "product", "active", "tier", "seats", "invoices_per_month", "sync", "entitlements", "position", "as_of")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    INVOICES_PER_MONTH_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    active: bool
    tier: Tier
    seats: int
    invoices_per_month: int
    sync: str
    entitlements: _containers.RepeatedCompositeFieldContainer[Entitlement]
    position: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., active: _Optional[bool] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., invoices_per_month: _Optional[int] = ..., sync: _Optional[str] = ..., entitlements: _Optional[_Iterable[_Union[Entitlement, _Mapping]]] = ..., position: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSeatAllowanceRequest(_message.Message):
    __slots__ = ("account_id", "product", "connections_in_use", "min_position", "as_of")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    connections_in_use: int
    min_position: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., connections_in_use: _Optional[int] = ..., min_position: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SeatAllowance(_message.Message):
    __slots__ = ("account_id", "product", "seats", "tier", "active", "valid_until", "connections_in_use", "can_create_connection", "remaining", "position", "as_of", "seats_leased")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    CAN_CREATE_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SEATS_LEASED_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    seats: int
    tier: Tier
    active: bool
    valid_until: _timestamp_pb2.Timestamp
    connections_in_use: int
    can_create_connection: bool
    remaining: int
    position: int
    as_of: _timestamp_pb2.Timestamp
    seats_leased: int
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., seats: _Optional[int] = ..., tier: _Optional[_Union[Tier, str]] = ..., active: _Optional[bool] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connections_in_use: _Optional[int] = ..., can_create_connection: _Optional[bool] = ..., remaining: _Optional[int] = ..., position: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seats_leased: _Optional[int] = ...) -> None: ...

class WatchSeatAllowanceRequest(_message.Message):
    __slots__ = ("account_id", "product", "connections_in_use", "after_position", "with_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    WITH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    connections_in_use: int
    after_position: int
    with_token: bool
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., connections_in_use: _Optional[int] = ..., after_position: _Optional[int] = ..., with_token: _Optional[bool] = ...) -> None: ...

class WatchSeatAllowanceResponse(_message.Message):
    __slots__ = ("allowance", "checkpoint", "caught_up", "token")
    ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    allowance: SeatAllowance
    checkpoint: Checkpoint
    caught_up: CaughtUp
    token: AllowanceToken
    def __init__(self, allowance: _Optional[_Union[SeatAllowance, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ..., token: _Optional[_Union[AllowanceToken, _Mapping]] = ...) -> None: ...

class GetAllowanceTokenRequest(_message.Message):
    __slots__ = ("account_id", "product", "min_position")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    min_position: int
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., min_position: _Optional[int] = ...) -> None: ...

class GetAllowanceTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AllowanceToken(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSigningKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSigningKeysResponse(_message.Message):
    __slots__ = ("jwks",)
    JWKS_FIELD_NUMBER: _ClassVar[int]
    jwks: str
    def __init__(self, jwks: _Optional[str] = ...) -> None: ...

class GetKeyHistoryRequest(_message.Message):
    __slots__ = ("key_id", "code", "subscription_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    code: str
    subscription_id: str
    def __init__(self, key_id: _Optional[str] = ..., code: _Optional[str] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class StoredEvent(_message.Message):
    __slots__ = ("type", "version", "recorded_at", "position", "payload", "key_id", "aggregate_type", "payload_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: int
    recorded_at: _timestamp_pb2.Timestamp
    position: int
    payload: _struct_pb2.Struct
    key_id: str
    aggregate_type: str
    payload_json: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., key_id: _Optional[str] = ..., aggregate_type: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class GetKeyHistoryResponse(_message.Message):
    __slots__ = ("key_id", "events")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    events: _containers.RepeatedCompositeFieldContainer[StoredEvent]
    def __init__(self, key_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[StoredEvent, _Mapping]]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("after_position", "follow", "limit", "event_types", "reseller_id", "account_id", "key_id")
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    after_position: int
    follow: bool
    limit: int
    event_types: _containers.RepeatedScalarFieldContainer[str]
    reseller_id: str
    account_id: str
    key_id: str
    def __init__(self, after_position: _Optional[int] = ..., follow: _Optional[bool] = ..., limit: _Optional[int] = ..., event_types: _Optional[_Iterable[str]] = ..., reseller_id: _Optional[str] = ..., account_id: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class CaughtUp(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event", "checkpoint", "caught_up")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    event: StoredEvent
    checkpoint: Checkpoint
    caught_up: CaughtUp
    def __init__(self, event: _Optional[_Union[StoredEvent, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ...) -> None: ...

class GetSeatUsageRequest(_message.Message):
    __slots__ = ("reseller_id", "account_id", "from_date", "to_date")
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    reseller_id: str
    account_id: str
    from_date: str
    to_date: str
    def __init__(self, reseller_id: _Optional[str] = ..., account_id: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class SeatUsageDay(_message.Message):
    __slots__ = ("date", "account_id", "seats_sold", "peak_seats_leased")
    DATE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SEATS_SOLD_FIELD_NUMBER: _ClassVar[int]
    PEAK_SEATS_LEASED_FIELD_NUMBER: _ClassVar[int]
    date: str
    account_id: str
    seats_sold: int
    peak_seats_leased: int
    def __init__(self, date: _Optional[str] = ..., account_id: _Optional[str] = ..., seats_sold: _Optional[int] = ..., peak_seats_leased: _Optional[int] = ...) -> None: ...

class GetSeatUsageResponse(_message.Message):
    __slots__ = ("days", "truncated", "position")
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    days: _containers.RepeatedCompositeFieldContainer[SeatUsageDay]
    truncated: bool
    position: int
    def __init__(self, days: _Optional[_Iterable[_Union[SeatUsageDay, _Mapping]]] = ..., truncated: _Optional[bool] = ..., position: _Optional[int] = ...) -> None: ...

class GetKeyStatsRequest(_message.Message):
    __slots__ = ("reseller_id", "product", "from_date", "to_date")
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    reseller_id: str
    product: Product
    from_date: str
    to_date: str
    def __init__(self, reseller_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class KeyCount(_message.Message):
    __slots__ = ("tier", "status", "reseller_id", "count")
    TIER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    status: KeyStatus
    reseller_id: str
    count: int
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., status: _Optional[_Union[KeyStatus, str]] = ..., reseller_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DailyActivations(_message.Message):
    __slots__ = ("date", "count")
    DATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    date: str
    count: int
    def __init__(self, date: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetKeyStatsResponse(_message.Message):
    __slots__ = ("counts", "activations_per_day", "position")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[KeyCount]
    activations_per_day: _containers.RepeatedCompositeFieldContainer[DailyActivations]
    position: int
    def __init__(self, counts: _Optional[_Iterable[_Union[KeyCount, _Mapping]]] = ..., activations_per_day: _Optional[_Iterable[_Union[DailyActivations, _Mapping]]] = ..., position: _Optional[int] = ...) -> None: ...

class ListExpiringSubscriptionsRequest(_message.Message):
    __slots__ = ("before", "page_size", "page_token", "reseller_id")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    reseller_id: str
    def __init__(self, before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., reseller_id: _Optional[str] = ...) -> None: ...

class ListExpiringSubscriptionsResponse(_message.Message):
    __slots__ = ("entitlements", "next_page_token", "position")
    ENTITLEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    entitlements: _containers.RepeatedCompositeFieldContainer[Entitlement]
    next_page_token: str
    position: int
    def __init__(self, entitlements: _Optional[_Iterable[_Union[Entitlement, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class GetProjectionStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProjectionStatus(_message.Message):
    __slots__ = ("name", "position", "head_position", "lag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    position: int
    head_position: int
    lag: int
    def __init__(self, name: _Optional[str] = ..., position: _Optional[int] = ..., head_position: _Optional[int] = ..., lag: _Optional[int] = ...) -> None: ...

class GetProjectionStatusResponse(_message.Message):
    __slots__ = ("projections", "head_position")
    PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    projections: _containers.RepeatedCompositeFieldContainer[ProjectionStatus]
    head_position: int
    def __init__(self, projections: _Optional[_Iterable[_Union[ProjectionStatus, _Mapping]]] = ..., head_position: _Optional[int] = ...) -> None: ...

class LiftAttemptBlockRequest(_message.Message):
    __slots__ = ("account_id", "session_id", "reason")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    session_id: str
    reason: str
    def __init__(self, account_id: _Optional[str] = ..., session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class LiftAttemptBlockResponse(_message.Message):
    __slots__ = ("lifted",)
    LIFTED_FIELD_NUMBER: _ClassVar[int]
    lifted: int
    def __init__(self, lifted: _Optional[int] = ...) -> None: ...

class RecordPlanEventRequest(_message.Message):
    __slots__ = ("billing_event_id", "subscription_id", "account_id", "product", "tier", "seats", "kind", "period_starts_at", "period_ends_at", "occurred_at", "cancel_at_period_end")
    BILLING_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PERIOD_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    billing_event_id: str
    subscription_id: str
    account_id: str
    product: Product
    tier: Tier
    seats: int
    kind: PlanEventKind
    period_starts_at: _timestamp_pb2.Timestamp
    period_ends_at: _timestamp_pb2.Timestamp
    occurred_at: _timestamp_pb2.Timestamp
    cancel_at_period_end: bool
    def __init__(self, billing_event_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., tier: _Optional[_Union[Tier, str]] = ..., seats: _Optional[int] = ..., kind: _Optional[_Union[PlanEventKind, str]] = ..., period_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_at_period_end: _Optional[bool] = ...) -> None: ...

class RecordPlanEventResponse(_message.Message):
    __slots__ = ("plan_id", "position", "duplicate", "ignored", "entitlement")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    position: int
    duplicate: bool
    ignored: bool
    entitlement: Entitlement
    def __init__(self, plan_id: _Optional[str] = ..., position: _Optional[int] = ..., duplicate: _Optional[bool] = ..., ignored: _Optional[bool] = ..., entitlement: _Optional[_Union[Entitlement, _Mapping]] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("endpoint_id", "reseller_id", "url", "event_types", "created_at", "disabled", "disabled_reason", "pending_deliveries", "oldest_pending_at")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AT_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    reseller_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    disabled: bool
    disabled_reason: str
    pending_deliveries: int
    oldest_pending_at: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., reseller_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled: _Optional[bool] = ..., disabled_reason: _Optional[str] = ..., pending_deliveries: _Optional[int] = ..., oldest_pending_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("reseller_id", "url", "event_types")
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    reseller_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reseller_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint_id", "secret", "endpoint")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    secret: str
    endpoint: WebhookEndpoint
    def __init__(self, endpoint_id: _Optional[str] = ..., secret: _Optional[str] = ..., endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("reseller_id",)
    RESELLER_ID_FIELD_NUMBER: _ClassVar[int]
    reseller_id: str
    def __init__(self, reseller_id: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ("deleted", "cancelled_deliveries")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    cancelled_deliveries: int
    def __init__(self, deleted: _Optional[bool] = ..., cancelled_deliveries: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "page_size", "page_token")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    page_size: int
    page_token: str
    def __init__(self, endpoint_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("attempt", "started_at", "status_code", "latency_ms", "error")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    started_at: _timestamp_pb2.Timestamp
    status_code: int
    latency_ms: int
    error: str
    def __init__(self, attempt: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., latency_ms: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("message_id", "endpoint_id", "event_type", "position", "state", "attempts", "created_at", "next_attempt_at", "delivered_at", "last_status_code", "last_error", "recent_attempts")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RECENT_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    endpoint_id: str
    event_type: str
    position: int
    state: WebhookDeliveryState
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    delivered_at: _timestamp_pb2.Timestamp
    last_status_code: int
    last_error: str
    recent_attempts: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    def __init__(self, message_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., event_type: _Optional[str] = ..., position: _Optional[int] = ..., state: _Optional[_Union[WebhookDeliveryState, str]] = ..., attempts: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., recent_attempts: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("endpoint_id", "message_id")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    message_id: str
    def __init__(self, endpoint_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: WebhookDelivery
    def __init__(self, delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...

class SeatLease(_message.Message):
    __slots__ = ("lease_id", "account_id", "product", "connection_id", "holder", "granted_at", "expires_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    account_id: str
    product: Product
    connection_id: str
    holder: str
    granted_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, lease_id: _Optional[str] = ..., account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., connection_id: _Optional[str] = ..., holder: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AcquireSeatRequest(_message.Message):
    __slots__ = ("account_id", "product", "connection_id", "holder", "ttl_seconds")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    connection_id: str
    holder: str
    ttl_seconds: int
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., connection_id: _Optional[str] = ..., holder: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class AcquireSeatResponse(_message.Message):
    __slots__ = ("lease", "seats", "seats_leased", "position")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    SEATS_LEASED_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    lease: SeatLease
    seats: int
    seats_leased: int
    position: int
    def __init__(self, lease: _Optional[_Union[SeatLease, _Mapping]] = ..., seats: _Optional[int] = ..., seats_leased: _Optional[int] = ..., position: _Optional[int] = ...) -> None: ...

class RenewSeatsRequest(_message.Message):
    __slots__ = ("holder", "lease_ids")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    lease_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, holder: _Optional[str] = ..., lease_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LeaseRenewal(_message.Message):
    __slots__ = ("lease_id", "renewed", "lost", "over_allowance", "expires_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    OVER_ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    renewed: bool
    lost: bool
    over_allowance: bool
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, lease_id: _Optional[str] = ..., renewed: _Optional[bool] = ..., lost: _Optional[bool] = ..., over_allowance: _Optional[bool] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewSeatsResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[LeaseRenewal]
    def __init__(self, leases: _Optional[_Iterable[_Union[LeaseRenewal, _Mapping]]] = ...) -> None: ...

class ReleaseSeatRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class ReleaseSeatResponse(_message.Message):
    __slots__ = ("released", "position")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    released: bool
    position: int
    def __init__(self, released: _Optional[bool] = ..., position: _Optional[int] = ...) -> None: ...

class ListSeatLeasesRequest(_message.Message):
    __slots__ = ("account_id", "product")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    product: Product
    def __init__(self, account_id: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ...) -> None: ...

class ListSeatLeasesResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[SeatLease]
    def __init__(self, leases: _Optional[_Iterable[_Union[SeatLease, _Mapping]]] = ...) -> None: ...
