"""The event store as an `eventsourcing` application: the library's repository, mapper and
recorder with the service's connection policy, and the reads every room shares (a key, a
stream's history as the audit shows it). The capabilities' commands subclass it (`keys.app`);
the views and the read side use it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import InfrastructureFactory, Mapper, StoredEvent
from eventsourcing.utils import Environment, strtobool

from license_svc.adapters import pools as dbpool
from license_svc.adapters.clock import Clock, utcnow
from license_svc.adapters.eventstore import TOPIC as RECORDER_TOPIC
from license_svc.adapters.eventstore import LicensingRecorder
from license_svc.adapters.mapper import StoreMapper
from license_svc.domain import codes
from license_svc.domain.identity import KeyIdentity
from license_svc.domain.key import ActivationKey, event_type

GROUP_COMMIT = "GROUP_COMMIT"  # "n": every save a transaction of its own
# How often a command re-decides after losing an optimistic-concurrency race.
CONFLICT_RETRIES = 5


class KeyNotFound(Exception):
    """No key with that id or code (or not one the caller may see)."""


@dataclass(frozen=True)
class HistoryEntry:
    type: str
    version: int
    recorded_at: datetime
    position: int
    payload: dict[str, Any]


class EventStore(Application[UUID]):
    name = "licensing"
    env = {"APPLICATION_RECORDER_TOPIC": RECORDER_TOPIC}  # noqa: RUF012 (library convention)

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        identity: KeyIdentity | None = None,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__(env)
        # On unless the environment says no (`Settings.group_commit`); the library's own
        # recorder (the bench's ceilings) has none.
        if isinstance(self.recorder, LicensingRecorder):
            self.store.use_group_commit(strtobool(self.env.get(GROUP_COMMIT) or "y"))
        self._identity = identity
        self.clock = clock

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper, quicker to decode (`adapters/mapper.py`)."""
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=StoreMapper)

    def construct_factory(self, env: Environment) -> InfrastructureFactory:  # type: ignore[type-arg]
        """The library's factory, its pool given the service's connection policy before the
        recorder opens it (`dbpool.harden`)."""
        factory = super().construct_factory(env)
        datastore = getattr(factory, "datastore", None)
        if datastore is not None:
            dbpool.harden(datastore, env)
        return factory

    @property
    def store(self) -> LicensingRecorder:
        return cast(LicensingRecorder, self.recorder)

    @property
    def store_mapper(self) -> StoreMapper:
        return cast(StoreMapper, self.mapper)

    @property
    def identity(self) -> KeyIdentity:
        if self._identity is None:
            raise RuntimeError("this LicensingApp was built without a pepper (read-only use)")
        return self._identity

    # -- reading ---------------------------------------------------------------------------

    def key_id_of(self, code: codes.ParsedCode) -> UUID:
        return self.identity.key_id(code)

    def get_key(self, key_id: UUID) -> ActivationKey:
        try:
            found: object = self.repository.get(key_id)
        except AggregateNotFoundError:
            raise KeyNotFound(str(key_id)) from None
        if not isinstance(found, ActivationKey):  # a plan's id is not a key
            raise KeyNotFound(str(key_id))
        return found

    def history(self, key_id: UUID) -> list[HistoryEntry]:
        entries = [
            self.entry(item.stored, item.position) for item in self.store.positioned_events(key_id)
        ]
        if not entries:
            raise KeyNotFound(str(key_id))
        return entries

    def entry(self, stored: StoredEvent, position: int) -> HistoryEntry:
        """A stored event as the audit shows it: its bare type and its attributes."""
        domain_event: Any = self.mapper.to_domain_event(stored)
        payload = {
            k: v
            for k, v in domain_event.__dict__.items()
            if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")
        }
        return HistoryEntry(
            type=event_type(stored.topic),
            version=stored.originator_version,
            recorded_at=domain_event.timestamp,
            position=position,
            payload=payload,
        )
