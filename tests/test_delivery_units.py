"""Delivery pieces without a database: throttle, backoff, SMTP client, sender plan."""

from datetime import timedelta

import pytest

from mailer.delivery.errors import RecipientNotSupported, RelayError
from mailer.delivery.retry import backoff
from mailer.delivery.sender import processes as runner
from mailer.delivery.sender.throttle import Throttle
from mailer.delivery.smtp.connection import RelaySettings, SmtpConnection, send_message
from tests.support.smtpd import ScriptedSMTPServer, free_port

pytestmark = pytest.mark.nodb

BODY = b"From: a@example.com\r\nSubject: hi\r\n\r\n.starts with a dot\r\n..two dots\r\nend\r\n"


class FakeTime:
    """A monotonic clock and sleep that only move when told to."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_paces_to_the_rate():
    fake = FakeTime()
    throttle = Throttle(2.0, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    for _ in range(11):
        throttle.wait()
    # The bucket starts with one token and holds at most two (one second's worth).
    assert fake.now - start == pytest.approx(5.0)


def test_unlimited_rate_never_sleeps():
    fake = FakeTime()
    throttle = Throttle(0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(1000):
        throttle.wait()
        throttle.accepted()
    assert fake.slept == []


def test_421_halves_the_rate_and_successes_bring_it_back():
    fake = FakeTime()
    throttle = Throttle(10.0, clock=fake.clock, sleep=fake.sleep)
    throttle.refused_temporarily(closing=True)
    assert throttle.rate == 5.0
    for _ in range(20):
        throttle.accepted()
    assert throttle.rate == 7.5
    for _ in range(20):
        throttle.accepted()
    assert throttle.rate == 10.0  # capped at the configured rate


def test_a_burst_of_4xx_backs_off_but_a_single_one_does_not():
    fake = FakeTime()
    throttle = Throttle(8.0, clock=fake.clock, sleep=fake.sleep)
    throttle.refused_temporarily()
    throttle.accepted()
    throttle.refused_temporarily()
    assert throttle.rate == 8.0
    throttle.refused_temporarily()
    assert throttle.rate == 4.0


def test_unlimited_sender_backs_off_from_its_measured_rate_and_recovers():
    fake = FakeTime()
    throttle = Throttle(0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(20):
        throttle.wait()
        throttle.accepted()
        fake.now += 0.01  # 100 messages/s
    throttle.refused_temporarily(closing=True)
    assert throttle.rate == pytest.approx(50.0)
    for _ in range(40):
        throttle.accepted()
    assert throttle.rate == 0  # unlimited again


def test_backoff_doubles_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert backoff(30) == timedelta(hours=2)


def test_plan_splits_connections_over_processes():
    config = {"MAILER_SMTP_CONNECTIONS": 4, "MAILER_SENDER_PROCESSES": 2}
    assert runner.plan(config) == [2, 2]
    assert runner.plan({**config, "MAILER_SMTP_CONNECTIONS": 5}) == [3, 2]
    assert runner.plan({**config, "MAILER_SMTP_CONNECTIONS": 1}) == [1]
    assert runner.plan({**config, "MAILER_SENDER_PROCESSES": 8}) == [1, 1, 1, 1]
    assert runner.plan(config, "sqlite") == [4]  # one writer process on SQLite


def settings(server, **changes) -> RelaySettings:
    values = dict(
        host=server.host, port=server.port, security="none", username="", password="",
        timeout=2.0, max_messages=1000, sender="news@example.com",
    )  # fmt: skip
    values.update(changes)
    return RelaySettings(**values)


def test_connection_is_reused_and_capped():
    with ScriptedSMTPServer() as server:
        connection = SmtpConnection(settings(server, max_messages=3))
        for i in range(7):
            assert connection.send(f"r{i}@example.com", BODY).code == 250
        connection.close()
        per_connection = [r.connection for r in server.received]
    assert [per_connection.count(c) for c in dict.fromkeys(per_connection)] == [3, 3, 1]


def test_dot_stuffing_round_trips_the_body():
    with ScriptedSMTPServer() as server:
        assert send_message(_config(server), "a@example.com", BODY).ok
        assert send_message(_config(server), "b@example.com", BODY.rstrip(b"\r\n")).ok
        received = [r.data for r in server.received]
    assert received[0] == BODY
    assert received[1] == BODY  # a missing final CRLF is added, nothing else changes


def test_refusals_are_returned_and_the_connection_goes_on():
    with ScriptedSMTPServer() as server:
        server.script("no@example.com", "550 5.1.1 no such user")
        server.script("later@example.com", "451 4.3.0 later")
        connection = SmtpConnection(settings(server))
        assert str(connection.send("no@example.com", BODY)) == "550 5.1.1 no such user"
        assert connection.send("later@example.com", BODY).temporary
        assert connection.send("yes@example.com", BODY).ok
        connection.close()
        assert len({r.connection for r in server.received}) == 1
        assert [r.rcpt_tos for r in server.received] == [["yes@example.com"]]


@pytest.mark.parametrize(
    ("script", "code", "words"),
    [
        ("421 4.3.2 going down", 421, "going down"),
        ("drop", None, "closed"),
        ("hang:3", None, "timed out"),
    ],
)
def test_421_drop_and_timeout_raise_relay_error_then_reconnect(script, code, words):
    with ScriptedSMTPServer() as server:
        server.script("x@example.com", script, times=1)
        connection = SmtpConnection(settings(server, timeout=1.0))
        assert connection.send("a@example.com", BODY).ok
        with pytest.raises(RelayError) as caught:
            connection.send("x@example.com", BODY)
        assert caught.value.code == code
        assert words in caught.value.text
        assert not connection.is_open
        assert connection.send("b@example.com", BODY).ok
        connection.close()


def test_unreachable_relay_raises_relay_error():
    config = {**_config(None), "MAILER_SMTP_PORT": free_port()}
    with pytest.raises(RelayError, match="cannot open a session"):
        send_message(config, "a@example.com", BODY)
    with pytest.raises(OSError):  # callers guarding with `except OSError` catch it too
        send_message(config, "a@example.com", BODY)


def test_non_ascii_address_needs_smtputf8():
    with ScriptedSMTPServer() as server:
        assert send_message(_config(server), "山田@example.jp", BODY).ok
        assert server.received[0].rcpt_tos == ["山田@example.jp"]
    with ScriptedSMTPServer(smtputf8=False) as server:
        with pytest.raises(RecipientNotSupported, match="SMTPUTF8"):
            send_message(_config(server), "山田@example.jp", BODY)
        assert send_message(_config(server), "yamada@example.jp", BODY).ok


def test_bad_security_setting_names_the_variable():
    with pytest.raises(ValueError, match="MAILER_SMTP_SECURITY"):
        RelaySettings.from_config({**_config(None), "MAILER_SMTP_SECURITY": "tls"})


def _config(server) -> dict:
    return {
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": server.port if server else 25,
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_SMTP_USERNAME": "",
        "MAILER_SMTP_PASSWORD": "",
        "MAILER_SMTP_TIMEOUT": 2.0,
        "MAILER_SMTP_MESSAGES_PER_CONNECTION": 1000,
        "MAILER_FROM": "Japan Weekly <news@example.com>",
    }
