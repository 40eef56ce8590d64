"""Issue 11, item 7: start-up refusals (guessable SECRET_KEY, FLASK_DEBUG on a public https
site, SMTP AUTH without TLS to a remote relay) and STARTTLS never falling back to plain text."""

import pytest

from config import Config
from mailer import create_app
from mailer.delivery.errors import RelayError
from mailer.delivery.smtp.connection import send_message
from tests.support.operator_cli import refusal
from tests.support.operator_cli import run_flask as _flask
from tests.support.smtpd import ScriptedSMTPServer

HOW = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


@pytest.mark.nodb
@pytest.mark.parametrize(
    "key",
    [
        "k" * 48,  # one character repeated
        "password" + "!" * 32,  # a dictionary word padded
        "passwordpasswordpasswordpassword",  # a word repeated
        "abcabcabcabcabcabcabcabcabcabcabcabc",  # few distinct characters
        "correcthorse" + "0" * 24,
    ],
)
def test_production_refuses_a_long_but_guessable_secret_key(production_env, key):
    message = refusal(production_env, SECRET_KEY=key)
    assert message.startswith("SECRET_KEY is long but guessable")
    assert HOW in message


@pytest.mark.nodb
def test_random_keys_are_accepted(production_env):
    import secrets

    for key in (secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(24)):
        production_env.setenv("SECRET_KEY", key)
        assert create_app(Config).config["SECRET_KEY"] == key


@pytest.mark.nodb
def test_the_real_cli_refuses_a_guessable_key_in_one_line(tmp_path):
    result = _flask(tmp_path, "feeds", "list", SECRET_KEY="x" * 64)
    assert result.returncode == 4
    assert result.stderr.strip().count("\n") == 0
    assert "SECRET_KEY is long but guessable" in result.stderr


@pytest.mark.nodb
def test_debug_with_a_public_https_base_url_refuses_to_start(production_env, tmp_path):
    message = refusal(
        production_env, FLASK_DEBUG="1", MAILER_BASE_URL="https://newsletter.example.com"
    )
    assert message.startswith("FLASK_DEBUG is on while MAILER_BASE_URL")
    result = _flask(
        tmp_path, "feeds", "list", FLASK_DEBUG="1", MAILER_BASE_URL="https://news.example.com"
    )
    assert result.returncode == 4 and "FLASK_DEBUG" in result.stderr


@pytest.mark.nodb
@pytest.mark.parametrize("base", ["http://127.0.0.1:5000", "https://localhost:5443"])
def test_debug_on_loopback_still_starts(production_env, base):
    production_env.setenv("FLASK_DEBUG", "1")
    production_env.setenv("MAILER_BASE_URL", base)
    assert create_app(Config).debug


@pytest.mark.nodb
def test_smtp_auth_without_tls_to_a_remote_relay_refuses_to_start(production_env):
    message = refusal(
        production_env,
        MAILER_SMTP_HOST="smtp.example.net",
        MAILER_SMTP_PORT="25",
        MAILER_SMTP_USERNAME="newsletter",
        MAILER_SMTP_PASSWORD="secret",
    )
    assert message.startswith("MAILER_SMTP_SECURITY is none while MAILER_SMTP_USERNAME is set")
    assert "\n" not in message
    production_env.setenv("MAILER_SMTP_SECURITY", "starttls")
    assert create_app(Config)  # the same relay with STARTTLS is fine
    production_env.setenv("MAILER_SMTP_SECURITY", "none")
    production_env.setenv("MAILER_SMTP_HOST", "127.0.0.1")
    assert create_app(Config)  # and so is a relay on loopback


@pytest.mark.nodb
def test_a_relay_without_starttls_gets_nothing_in_plain_text():
    with ScriptedSMTPServer() as server:  # a real server that does not offer STARTTLS
        config = {
            "MAILER_SMTP_HOST": server.host,
            "MAILER_SMTP_PORT": server.port,
            "MAILER_SMTP_SECURITY": "starttls",
            "MAILER_SMTP_USERNAME": "",
            "MAILER_SMTP_PASSWORD": "",
            "MAILER_SMTP_TIMEOUT": 5.0,
            "MAILER_SMTP_MESSAGES_PER_CONNECTION": 1000,
            "MAILER_FROM": "Japan Weekly <news@example.com>",
        }
        with pytest.raises(RelayError):
            send_message(config, "r@example.com", b"Subject: x\r\n\r\nsecret\r\n")
        assert server.received == []
