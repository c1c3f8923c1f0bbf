"""The allowance tokens' settings (rules §13): checked by `config.load`, a development key made by
`run` only, and never a key in the settings' repr."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from license_svc import config
from license_svc.config import ConfigError

PEPPER = "unit-pepper-not-a-secret-0123456789"


def load(tmp_path: Path, purpose: config.Purpose = "service", **env: str) -> config.Settings:
    base = {
        "LICENSE_SVC_DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
        "LICENSE_SVC_PEPPER": PEPPER,
        "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
        "LICENSE_SVC_VAR_DIR": str(tmp_path / "var"),
    }
    return config.load({**base, **{f"LICENSE_SVC_{k}": v for k, v in env.items()}}, purpose=purpose)


def test_run_makes_one_development_key_under_var_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    first = load(tmp_path, "dev")
    assert first.signing_key_file == tmp_path / "var" / "signing-key.pem"
    assert stat.S_IMODE(first.signing_key_file.stat().st_mode) == 0o600
    text = first.signing_key_file.read_text()
    assert "BEGIN PRIVATE KEY" in text
    again = load(tmp_path, "dev").signing_key_file
    assert again is not None and again.read_text() == text  # kept, not remade


def test_production_settings_invent_no_key(tmp_path: Path) -> None:
    assert load(tmp_path).signing_key_file is None
    assert not (tmp_path / "var" / "signing-key.pem").exists()


def test_key_files_must_be_readable_and_the_ttl_in_range(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    for name, value in (
        ("SIGNING_KEY_FILE", missing),
        ("RETIRED_SIGNING_KEYS", f"{config.DEV_TOKENS}, {missing}"),
        ("ALLOWANCE_TOKEN_TTL_SECONDS", "0"),
        ("ALLOWANCE_TOKEN_TTL_SECONDS", "86401"),
        ("ALLOWANCE_TOKEN_TTL_SECONDS", "15m"),
    ):
        with pytest.raises(ConfigError, match=f"LICENSE_SVC_{name}"):
            load(tmp_path, "service", **{name: value})


def test_the_settings_hold_the_key_files_path_never_the_key(tmp_path: Path) -> None:
    settings = load(tmp_path, "dev", ALLOWANCE_TOKEN_TTL_SECONDS="300")
    assert settings.allowance_token_ttl_seconds == 300
    assert settings.signing_key_file is not None
    body = "".join(settings.signing_key_file.read_text().splitlines()[1:-1])
    assert body not in repr(settings) and body not in str(settings)
    assert not settings.unknown
