"""The app factory, configuration and health check."""

import pytest

from mailer import create_app


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


@pytest.mark.nodb
def test_production_refuses_default_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    monkeypatch.setenv("MAILER_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.sqlite3")
    from config import Config, ConfigError

    with pytest.raises(ConfigError, match="SECRET_KEY is the insecure development default"):
        create_app(Config)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAILER_SENDER_INTERVAL", "-1", "MAILER_SENDER_INTERVAL must be at least 1, got -1"),
        ("MAILER_FEED_REFRESH_MINUTES", "0", "MAILER_FEED_REFRESH_MINUTES must be at least 1"),
        ("MAILER_SMTP_PORT", "99999", "MAILER_SMTP_PORT must be at most 65535, got 99999"),
        ("MAILER_SMTP_PORT", "abc", "MAILER_SMTP_PORT must be a whole number, got 'abc'"),
        ("MAILER_SMTP_TIMEOUT", "0", "MAILER_SMTP_TIMEOUT must be at least 0.1, got 0.0"),
        ("MAILER_SMTP_CONNECTIONS", "0", "MAILER_SMTP_CONNECTIONS must be at least 1, got 0"),
        ("MAILER_BATCH_SIZE", "-5", "MAILER_BATCH_SIZE must be at least 1, got -5"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_variable(monkeypatch, name, value, message):
    from config import Config

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as excinfo:
        Config()
    assert str(excinfo.value).startswith(message)


@pytest.mark.nodb
def test_secret_key_fallbacks_are_a_list(monkeypatch):
    from config import Config

    monkeypatch.setenv("SECRET_KEY_FALLBACKS", "old-one, older-one,")
    assert Config().SECRET_KEY_FALLBACKS == ["old-one", "older-one"]


def test_not_found_is_a_page_in_the_site_layout(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "<h1>Not Found</h1>" in body
    assert 'href="/"' in body


def test_missing_csrf_token_is_a_readable_400(client):
    response = client.post("/admin/login", data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "<h1>Bad Request</h1>" in body
    assert "The CSRF token is missing." in body


def test_json_clients_get_json_errors(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"
