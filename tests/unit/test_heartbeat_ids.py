"""A heartbeat's ids are checked in one match over their join (`seats._all_canonical`): it
must say what checking each id alone says, whatever the ids hold (commas above all)."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from license_svc.entrypoints.api.seats import _CANONICAL, _all_canonical

ONE = re.compile(_CANONICAL)
canonical = st.uuids().map(str)
# Ids that are canonical, joined canonical ids, pieces of them, and any text at all.
pieces = st.one_of(
    canonical,
    st.lists(canonical, min_size=2, max_size=3).map(",".join),
    canonical.map(lambda s: s[:20]),
    canonical.map(str.upper),
    st.just(""),
    st.just(","),
    st.text(max_size=40),
)


@given(st.lists(pieces, min_size=1, max_size=8))
def test_the_joined_match_says_what_each_id_alone_says(ids: list[str]) -> None:
    assert _all_canonical(ids) == all(ONE.fullmatch(i) for i in ids)


def test_an_id_holding_two_ids_is_not_canonical_even_where_the_join_would_match() -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    assert _all_canonical([a, b, c])
    assert not _all_canonical([f"{a},{b}", c])
    assert not _all_canonical([f"{a},{b}", ""])
    assert not _all_canonical([a, ""])
