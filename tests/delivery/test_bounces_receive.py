"""`flask --app wsgi bounces receive`: real reports from many MTAs, complaints, auto-replies,
forged VERP tokens and reports about addresses we did not mail; SQLite and PostgreSQL."""

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer import clock
from mailer.delivery.bounces.verp import DELIVERY, Verp
from mailer.models import Bounce, BounceReceipt, ConsentEvent, Delivery, Subscriber
from tests.conftest import PRODUCTION_KEY, ROOT
from tests.support.bounces import arf, dsn, mailed, out_of_office, shared_reports

BOUNCE_ADDRESS = "bounces@news.example.jp"
NEVER_SUBSCRIBED = "zzzzz@example.uk"  # named by dsn_02.txt, never on our list


@pytest.fixture
def app_config(app_config):
    """Soft bounces that take a while to suppress; VERP off (reports from other MTAs carry
    no token of ours): the tests of tokens turn it on with :func:`verp_on`."""
    return {**app_config, "MAILER_SOFT_BOUNCE_LIMIT": 5}


def verp_on(app) -> Verp:
    """Set ``MAILER_BOUNCE_ADDRESS`` on the running app; return its Verp."""
    app.config["MAILER_BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
    return Verp(app.config)


def receive(runner, raw: bytes, *args: str):
    """Run `bounces receive` with ``raw`` on standard input; return the click result."""
    result = runner.invoke(args=["bounces", "receive", *args], input=raw)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def subscriber(session, email: str) -> Subscriber:
    session.expire_all()
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def bounces_of(session) -> Counter:
    rows = session.execute(select(Subscriber.email, Bounce.kind).join(Bounce))
    return Counter(rows.all())


def test_every_shared_report_is_counted_as_expected(runner, session, shared_dir):
    folder, expected = shared_reports(shared_dir)
    everyone = {a for v in expected.values() for a in v["permanent"] + v["temporary"]}
    mailed(session, sorted(everyone - {NEVER_SUBSCRIBED}))

    result = receive(runner, (folder / "dumbass_01.txt").read_bytes())
    assert (result.exit_code, result.output) == (
        0,
        "ignored: no failed recipient or complaint recognised\n",
    )
    assert bounces_of(session) == Counter()

    hard, soft = Counter(), Counter()
    for name, kinds in sorted(expected.items()):
        result = receive(runner, (folder / name).read_bytes())
        assert result.exit_code == 0, (name, result.output)
        hard.update(a for a in kinds["permanent"] if a != NEVER_SUBSCRIBED)
        soft.update(kinds["temporary"])
        assert ("ignored" in result.output) == (name in ("dumbass_01.txt", "dsn_02.txt")), name

    for address in everyone - {NEVER_SUBSCRIBED}:
        row = subscriber(session, address)
        # Each address was sent one message here: its delay warnings are one soft failure.
        assert (row.hard_bounces, row.soft_failures_in_row) == (
            hard[address],
            min(soft[address], 1),
        )
        assert row.status == ("bounced" if hard[address] else "confirmed"), address
    expected_rows = Counter({(a, "hard"): n for a, n in hard.items()})
    expected_rows.update({(a, "soft"): n for a, n in soft.items()})
    assert bounces_of(session) == expected_rows
    assert session.scalar(select(func.count()).select_from(Subscriber).where(
        Subscriber.email == NEVER_SUBSCRIBED)) == 0  # fmt: skip


def test_a_dsn_keeps_status_code_and_escaped_diagnostic(runner, session):
    ids = mailed(session, ["ann@example.com"])
    result = receive(runner, dsn("ann@example.com", "5.1.1"))
    assert result.exit_code == 0
    row = session.scalars(select(Bounce)).one()
    assert (row.kind, row.source, row.status_code) == ("hard", "receive", "5.1.1")
    assert row.delivery_id == ids["ann@example.com"]
    assert row.diagnostic == "550 5.1.1 mailbox trouble <b>here</b>"
    assert subscriber(session, "ann@example.com").status == "bounced"
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == "bounced")).one()
    assert event.source == "delivery"


def test_a_delay_warning_is_soft_and_the_same_report_twice_counts_once(runner, session):
    mailed(session, ["bob@example.com"])
    report = dsn("bob@example.com", "4.4.7", action="delayed")
    assert receive(runner, report).exit_code == 0
    assert receive(runner, report).output == "replayed: already processed\n"
    row = subscriber(session, "bob@example.com")
    assert (row.status, row.soft_failures_in_row, row.hard_bounces) == ("confirmed", 1, 0)
    assert session.scalar(select(Bounce.status_code)) == "4.4.7"
    assert session.scalar(select(func.count()).select_from(BounceReceipt)) == 1


def test_verp_token_names_the_delivery_even_for_another_address(app, runner, session):
    ids = mailed(session, ["chie@example.jp", "dan@example.com"])
    verp = verp_on(app)
    to = verp.sender(DELIVERY, ids["chie@example.jp"])
    # The relay reports the address it forwarded to; the token still names Chie's delivery.
    result = receive(runner, dsn("chie.forwarded@elsewhere.example", "5.2.1", to=to))
    assert result.exit_code == 0, result.output
    assert bounces_of(session) == Counter({("chie@example.jp", "hard"): 1})
    row = session.scalars(select(Bounce)).one()
    assert row.delivery_id == ids["chie@example.jp"]


def test_a_wrong_hmac_changes_nothing(app, runner, session):
    ids = mailed(session, ["dan@example.com"])
    good = verp_on(app).sender(DELIVERY, ids["dan@example.com"])
    local, domain = good.split("@")
    forged = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"
    result = receive(runner, dsn("dan@example.com", to=forged))
    assert result.output == "ignored: a VERP token whose signature does not verify\n"
    assert bounces_of(session) == Counter()
    assert subscriber(session, "dan@example.com").hard_bounces == 0
    # The same forgery given as the envelope recipient by the MTA changes nothing either.
    result = receive(runner, dsn("dan@example.com"), "--recipient", forged)
    assert result.output.startswith("ignored")
    assert subscriber(session, "dan@example.com").status == "confirmed"


def test_our_message_id_quoted_in_the_report_names_the_delivery(session, runner):
    t0 = clock.now()
    first = mailed(session, ["eve@example.com"], sent_at=t0 - timedelta(days=7))
    mailed(session, ["eve@example.com"], number=2, sent_at=t0)  # the latest one
    delivery = session.get(Delivery, first["eve@example.com"])
    quoted = f"<issue-{delivery.issue_id}.sub-{delivery.subscriber_id}@example.com>"
    assert receive(runner, dsn("eve@example.com", original_id=quoted)).exit_code == 0
    assert session.scalar(select(Bounce.delivery_id)) == delivery.id


def test_an_arf_complaint_unsubscribes_at_once(runner, session):
    mailed(session, ["fay@example.com"])
    result = receive(runner, arf("fay@example.com"))
    assert result.exit_code == 0, result.output
    row = subscriber(session, "fay@example.com")
    assert row.status == "unsubscribed"
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == "complaint")).one()
    assert (event.source, event.subscriber_id) == ("receive", row.id)
    assert "Feedback-Type: abuse" in event.detail
    assert bounces_of(session) == Counter({("fay@example.com", "complaint"): 1})


def test_an_out_of_office_reply_is_no_bounce(runner, session):
    mailed(session, ["gil@example.com"])
    result = receive(runner, out_of_office("gil@example.com"))
    assert result.output == "ignored: an auto-reply (RFC 3834), not a bounce\n"
    assert (subscriber(session, "gil@example.com").status, bounces_of(session)) == (
        "confirmed",
        Counter(),
    )


def test_a_report_about_an_address_not_mailed_lately_changes_nothing(runner, session):
    t0 = clock.now()
    mailed(session, ["hal@example.com"], sent_at=t0)
    mailed(session, ["ivy@example.com"], number=2, sent_at=t0)
    session.execute(Subscriber.__table__.insert().values(
        email="joe@example.com", status="confirmed", version=1, created_at=t0))  # fmt: skip
    session.commit()
    clock.freeze(t0 + timedelta(days=30, seconds=1))
    assert receive(runner, dsn("hal@example.com")).output.startswith("ignored: matches no")
    assert receive(runner, dsn("joe@example.com")).output.startswith("ignored: matches no")
    assert receive(runner, arf("ivy@example.com")).output.startswith("ignored: matches no")
    for address in ("hal@example.com", "joe@example.com", "ivy@example.com"):
        assert subscriber(session, address).status == "confirmed"
    assert bounces_of(session) == Counter()


def test_a_report_over_1_mib_is_refused(runner, session):
    mailed(session, ["kim@example.com"])
    huge = dsn("kim@example.com") + b"x" * (2 * 1024 * 1024)
    result = receive(runner, huge)
    assert result.exit_code == 0
    assert "refused" in result.output
    assert subscriber(session, "kim@example.com").status == "confirmed"


def test_an_unreachable_database_exits_75(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=5",
        "SECRET_KEY": PRODUCTION_KEY,
        "MAILER_INSTANCE_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "bounces", "receive"],
        input=dsn("x@example.com"),
        capture_output=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 75, done.stderr
    assert b"cannot reach the database" in done.stderr


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"Subject: no sender at all\r\n\r\n550 5.1.1 <ann@example.com>: user unknown\r\n",
        "Message-ID: <ü@例え.jp>\r\nFrom: MAILER-DAEMON@x.example\r\n\r\nhi\r\n".encode(),
        bytes(range(256)) * 8,
    ],
    ids=["empty", "no-from", "non-ascii-headers", "binary"],
)
def test_odd_reports_are_ignored_not_crashed_on(runner, session, raw):
    mailed(session, ["ann@example.com"])
    result = receive(runner, raw)
    assert (result.exit_code, result.output) == (
        0,
        "ignored: no failed recipient or complaint recognised\n",
    )
    assert subscriber(session, "ann@example.com").status == "confirmed"


def test_the_daily_purge_forgets_event_ids_after_30_days(app, runner, session):
    from mailer import scheduler

    t0 = clock.now()
    clock.freeze(t0)
    mailed(session, ["lee@example.com"])
    assert receive(runner, dsn("lee@example.com", "4.2.2", action="delayed")).exit_code == 0
    clock.freeze(t0 + timedelta(days=30))
    scheduler.purge_pending_job(app)
    assert session.scalar(select(func.count()).select_from(BounceReceipt)) == 1
    clock.freeze(t0 + timedelta(days=30, seconds=1))
    scheduler.purge_pending_job(app)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(BounceReceipt)) == 0


def test_with_verp_on_a_report_without_a_token_changes_nothing(app, runner, session):
    # The bounce address is in every Return-Path: a stranger who knows a subscriber's
    # address could otherwise unsubscribe them with a hand-made report.
    mailed(session, ["erin@example.com"])
    verp_on(app)
    result = receive(runner, dsn("erin@example.com", "5.1.1", to=BOUNCE_ADDRESS))
    assert result.output == (
        "ignored: no VERP token, which every report must carry with MAILER_BOUNCE_ADDRESS\n"
    )
    assert subscriber(session, "erin@example.com").status == "confirmed"
    assert bounces_of(session) == Counter()


def test_delay_warnings_for_one_message_are_one_soft_failure(runner, session):
    # A relay resends its delay warning at each retry; each is kept, the message counts once.
    mailed(session, ["fay@example.com"])
    for hours in (4, 8, 12, 24, 48, 72):
        report = dsn("fay@example.com", "4.4.7", action="delayed").replace(
            b"Message-ID: <dsn-", f"Message-ID: <{hours}h-dsn-".encode()
        )
        assert receive(runner, report).exit_code == 0
    row = subscriber(session, "fay@example.com")
    assert (row.status, row.soft_failures_in_row) == ("confirmed", 1)
    assert bounces_of(session) == Counter({("fay@example.com", "soft"): 6})
