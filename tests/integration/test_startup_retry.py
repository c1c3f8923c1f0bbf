"""Start-up when the database goes away while the service is being built (a restart during an
outage): it waits for the database again within the one start-up bound, instead of exiting."""

from __future__ import annotations

import logging

import psycopg
import pytest

from license_svc import bootstrap, config, startup


def lost() -> psycopg.OperationalError:
    return psycopg.OperationalError("consuming input failed: server closed the connection")


def test_a_connection_lost_mid_build_is_waited_out_and_the_build_done_again(
    settings: config.Settings, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def build(given: config.Settings) -> bootstrap.Service:
        calls.append(given)
        if len(calls) == 1:
            raise RuntimeError("the library's wrapper") from lost()
        return bootstrap.build(given)

    with caplog.at_level(logging.WARNING, logger="license_svc.startup"):
        service = startup.start_when_reachable(settings, build)
    try:
        assert len(calls) == 2
        assert "went away during start-up" in caplog.text
    finally:
        service.close()


@pytest.mark.parametrize(
    "error",
    [psycopg.OperationalError('password authentication failed for user "x"'), ValueError("bug")],
    ids=["refused-login", "another-error"],
)
def test_a_refused_login_or_another_error_is_not_retried(
    settings: config.Settings, error: Exception
) -> None:
    calls = []

    def build(_: config.Settings) -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        startup.start_when_reachable(settings, build)
    assert calls == [1]


def test_a_database_that_stays_away_past_the_bound_is_one_line_naming_the_setting(
    settings: config.Settings,
) -> None:
    def build(_: config.Settings) -> None:
        raise lost()

    quick = settings.with_(startup_wait_seconds=0.0)
    with pytest.raises(startup.DependencyDown, match="LICENSE_SVC_STARTUP_WAIT_SECONDS"):
        startup.start_when_reachable(quick, build)
