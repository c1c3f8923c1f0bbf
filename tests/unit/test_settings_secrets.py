"""Settings never show a secret: their repr (and so any log line or traceback that prints
them) hides the pepper and the database password."""

from __future__ import annotations

from license_svc import config

PASSWORD = "db-password-never-shown"
PEPPER = "pepper-never-shown-0123456789"


def loaded() -> config.Settings:
    return config.load(
        {
            "LICENSE_SVC_DATABASE_URL": f"postgresql://svc:{PASSWORD}@db.internal:5432/licensing",
            "LICENSE_SVC_PEPPER": PEPPER,
            "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
        }
    )


def test_the_settings_repr_hides_the_pepper_and_the_database_password() -> None:
    settings = loaded()
    for shown in (repr(settings), str(settings), f"{settings!r}", repr([settings])):
        assert PASSWORD not in shown and PEPPER not in shown
        assert PEPPER.encode().hex() not in shown
        assert "db.internal:5432/licensing" in shown  # still says which database
    changed = settings.with_(extra={"POSTGRES_PASSWORD": PASSWORD})
    assert PASSWORD not in repr(changed)


def test_a_url_password_given_as_a_parameter_is_hidden_too() -> None:
    settings = loaded().with_(database_url=f"host=db.internal dbname=x password={PASSWORD}")
    assert PASSWORD not in repr(settings)


def test_the_client_settings_repr_hides_the_token() -> None:
    client = config.load_client({"LICENSE_SVC_TOKEN": "client-token-never-shown"})
    assert "client-token-never-shown" not in repr(client)
