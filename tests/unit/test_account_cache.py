"""The account cache's rules, without a database: what a notice drops, what a racing read may
keep, what a lost listener forgets, and the notice payload's limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from license_svc.reads.cache import AccountCache
from projections.changes import NOTICE_LIMIT, Notice

T0 = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
VIEW = "allowance_g1"


def listening(size: int = 10) -> AccountCache[str]:
    cache: AccountCache[str] = AccountCache(size)
    cache.connected()
    return cache


def keep(
    cache: AccountCache[str], account: str, value: str, position: int, until: datetime | None = None
) -> None:
    cache.put(cache.begin((VIEW, account, "integrations")), value, position, T0, until)


def key(account: str) -> tuple[str, str, str]:
    return (VIEW, account, "integrations")


def test_a_notice_naming_the_account_drops_only_its_older_answer() -> None:
    cache = listening()
    keep(cache, "a", "A", 10)
    keep(cache, "b", "B", 10)
    cache.heard(Notice(VIEW, 11, 12, frozenset({"a"})))
    assert cache.get(key("a"), T0, 0) is None
    assert cache.get(key("b"), T0, 0) == ("B", 12)  # current at the heard position too


def test_an_answer_read_while_a_notice_for_it_arrived_is_not_kept() -> None:
    cache = listening()
    ticket = cache.begin(key("a"))
    cache.heard(Notice(VIEW, 11, 11, frozenset({"a"})))
    cache.put(ticket, "old", 10, T0, None)  # read before position 11 committed
    assert cache.get(key("a"), T0, 0) is None


def test_a_notice_that_names_nobody_drops_everything_older() -> None:
    cache = listening()
    keep(cache, "a", "A", 10)
    keep(cache, "b", "B", 20)
    cache.heard(Notice(VIEW, 11, 15, None))
    assert cache.get(key("a"), T0, 0) is None
    assert cache.get(key("b"), T0, 0) == ("B", 20)


def test_min_position_beyond_what_is_known_goes_to_the_database() -> None:
    cache = listening()
    keep(cache, "a", "A", 10)
    assert cache.get(key("a"), T0, 11) is None
    assert cache.get(key("a"), T0, 10) == ("A", 10)


def test_an_answer_expires_at_its_valid_until() -> None:
    cache = listening()
    keep(cache, "a", "A", 10, until=T0 + timedelta(days=1))
    assert cache.get(key("a"), T0 + timedelta(hours=23), 0) == ("A", 10)
    assert cache.get(key("a"), T0 + timedelta(days=1), 0) is None


def test_a_lost_listener_empties_the_cache_and_refuses_reads_begun_before() -> None:
    cache = listening()
    keep(cache, "a", "A", 10)
    ticket = cache.begin(key("b"))
    cache.lost()
    assert cache.get(key("a"), T0, 0) is None
    assert cache.begin(key("a")) is None
    cache.connected()
    cache.put(ticket, "B", 10, T0, None)
    assert cache.get(key("b"), T0, 0) is None


def test_the_least_recently_used_answer_goes_first() -> None:
    cache = listening(size=2)
    keep(cache, "a", "A", 1)
    keep(cache, "b", "B", 1)
    cache.get(key("a"), T0, 0)
    keep(cache, "c", "C", 1)
    assert len(cache) == 2
    assert cache.get(key("b"), T0, 0) is None
    assert cache.get(key("a"), T0, 0) is not None


def test_a_notice_names_its_accounts_until_the_payload_limit_then_everything() -> None:
    few = Notice(VIEW, 1, 2, frozenset({"a:b", 'q"x', "ü"}))
    assert Notice.decode(few.encode()) == few
    many = Notice(VIEW, 1, 900, frozenset(f"account-{i}" for i in range(900)))
    assert len(many.encode()) < NOTICE_LIMIT
    assert Notice.decode(many.encode()).accounts is None
    assert Notice.decode(f"{VIEW}:1:2") == Notice(VIEW, 1, 2, None)  # an older worker's notice


def test_a_lease_granted_here_drops_the_accounts_answer_and_a_read_racing_it() -> None:
    cache = listening()
    keep(cache, "a", "A", 10)
    keep(cache, "b", "B", 10)
    racing = cache.begin(key("a"))
    cache.forget("a", 15)  # this server granted a seat lease of "a" at store position 15
    assert cache.get(key("a"), T0, 0) is None
    cache.put(racing, "stale", 12, T0, None)  # began before the grant: not kept
    assert cache.get(key("a"), T0, 0) is None
    assert cache.get(key("b"), T0, 0) == ("B", 10)
    keep(cache, "a", "fresh", 12)  # a read begun after it counts the lease: kept
    assert cache.get(key("a"), T0, 0) == ("fresh", 12)


def test_forget_drops_the_account_in_every_view_generation_and_product_and_nothing_else() -> None:
    cache = listening(10)
    for view in (VIEW, "allowance_g2"):
        for product in ("integrations", "invoicing"):
            for account in ("a", "b"):
                ticket = cache.begin((view, account, product))
                cache.put(ticket, f"{view}/{account}/{product}", 10, T0, None)
    assert len(cache) == 8
    cache.forget("a", 15)
    assert len(cache) == 4
    for view in (VIEW, "allowance_g2"):
        for product in ("integrations", "invoicing"):
            assert cache.get((view, "a", product), T0, 0) is None
            assert cache.get((view, "b", product), T0, 0) == (f"{view}/b/{product}", 10)
