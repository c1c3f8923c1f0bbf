"""`startup.settle_memory`: what `serve` does to the garbage collector once it is up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from license_svc import config, startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer(restored_gc: None) -> None:
    startup.settle_memory(50_000)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (50_000, 20, 10)


def test_zero_leaves_pythons_own_settings(restored_gc: None) -> None:
    before = gc.get_threshold()
    startup.settle_memory(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_setting_is_a_non_negative_integer() -> None:
    base = {
        "LICENSE_SVC_DATABASE_URL": "postgresql://localhost/x",
        "LICENSE_SVC_PEPPER": "a test pepper of enough length, 32+ bytes",
        "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
    }
    assert config.load(base, purpose="tool").gc_threshold == 50_000
    assert config.load({**base, "LICENSE_SVC_GC_THRESHOLD": "0"}, purpose="tool").gc_threshold == 0
    for bad in ("-1", "lots"):
        with pytest.raises(config.ConfigError, match="LICENSE_SVC_GC_THRESHOLD"):
            config.load({**base, "LICENSE_SVC_GC_THRESHOLD": bad}, purpose="tool")
