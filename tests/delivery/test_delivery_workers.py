"""Sender processes, crashes and concurrent workers: real subprocesses, real SMTP, both DBs."""

import json
import os
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text

from mailer import clock, create_app
from mailer.delivery import dispatch as engine
from mailer.delivery import enqueue as queue
from mailer.extensions import db
from mailer.models import Delivery, Issue, Subscriber
from tests.support.deliveries import make_issue, many_subscribers, message_ids, start_runner


def wait_for(predicate, what: str, process=None) -> None:
    """Poll ``predicate``; fail if ``process`` ends first or nothing happens for minutes."""
    deadline = time.monotonic() + 300
    while not predicate():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the sender exited before {what}: {process.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.005)


def kill_group(process) -> None:
    """SIGKILL the runner and any sender process it started (a machine losing power)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


CONNECTIONS = 2  # SMTP connections of the one sender process in the crash tests


def _one_sender_issue(app_config: dict, request, subscribers: int) -> tuple:
    """One sender process with CONNECTIONS connections, batches of 50, and issue 1 started.

    ``subscribers`` confirmed subscribers are added first. Returns (app, smtp_server, emails):
    the app and SMTP server fixtures and the subscribers' addresses, sorted.
    """
    app_config.update(
        MAILER_SENDER_PROCESSES=1, MAILER_SMTP_CONNECTIONS=CONNECTIONS, MAILER_BATCH_SIZE=50
    )
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    with app.app_context():
        emails = many_subscribers(db.session, subscribers)
        make_issue(db.session)
        engine.start_issue(db.session, 1)
        db.session.remove()
    return app, smtp_server, emails


def test_sender_processes_split_the_work(app_config, request):
    app_config["MAILER_SENDER_PROCESSES"] = 2
    app_config["MAILER_SMTP_CONNECTIONS"] = 4
    app_config["MAILER_BATCH_SIZE"] = 100
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    seen = []
    with app.app_context():
        emails = many_subscribers(db.session, engine.MIN_ROWS_FOR_PROCESSES + 200)
        make_issue(db.session)
        engine.start_issue(db.session, 1)
        db.session.remove()

    summary = engine.send_pending(app, progress=seen.append, factory=create_app)

    assert (summary.sent, summary.errors, summary.issues) == (len(emails), [], {1: "sent"})
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == emails
    assert len({r.connection for r in smtp_server.received}) == 4
    assert seen[-1].sent == len(emails) and seen[-1].total == len(emails)


def test_sigkill_at_several_points_resends_at_most_the_messages_in_flight(app_config, request):
    app, smtp_server, emails = _one_sender_issue(app_config, request, 2000)
    base = clock.now()
    kills = [300, 900, 1500]
    for round_, at in enumerate(kills):
        # Each restart runs past the leases of the killed one (mailer.clock, no sleeping).
        frozen = base + timedelta(minutes=10 * round_) if round_ else None
        process = start_runner(app_config, frozen=frozen)
        wait_for(lambda at=at: len(smtp_server.received) >= at, f"{at} messages", process)
        kill_group(process)
    final = start_runner(app_config, frozen=base + timedelta(minutes=10 * len(kills)))
    out, err = final.communicate()
    assert final.returncode == 0, err[-2000:]
    assert json.loads(out.splitlines()[-1])["issues"] == {"1": "sent"}

    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        assert issue.status == "sent"
        assert queue.status_counts(db.session, issue.id)["sent"] == len(emails)
    counts = Counter(message_ids(smtp_server.received))
    assert len(counts) == len(emails)
    assert sorted({r.rcpt_tos[0] for r in smtp_server.received}) == emails
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= len(kills) * CONNECTIONS


@pytest.fixture
def pg_app_config(request, smtp_server, tmp_path):
    """App settings on the session's PostgreSQL database (PostgreSQL only), emptied after."""
    url = request.getfixturevalue("_pg_schema")
    yield {
        "SQLALCHEMY_DATABASE_URI": url,
        "MAILER_SMTP_HOST": smtp_server.host,
        "MAILER_SMTP_PORT": smtp_server.port,
        "MAILER_SMTP_TIMEOUT": 10.0,
        "MAILER_INSTANCE_DIR": str(tmp_path / "instance"),
        "MAILER_SENDER_PROCESSES": 1,
        "MAILER_SMTP_CONNECTIONS": 2,
        "MAILER_BATCH_SIZE": 100,
    }
    cleanup = create_engine(url)
    with cleanup.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    cleanup.dispose()


def test_three_workers_on_postgresql_send_each_message_once(pg_app_config, smtp_server, tmp_path):
    app = create_app(pg_app_config)
    with app.app_context():
        emails = many_subscribers(db.session, 3000)
        make_issue(db.session)
        engine.start_issue(db.session, 1)
        db.session.remove()
        db.engine.dispose()
    go = tmp_path / "go"
    workers = [start_runner(pg_app_config, start_file=go) for _ in range(3)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()[-2000:]
    go.touch()  # all three start sending together
    results = [worker.communicate() for worker in workers]

    for worker, (_out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err[-2000:]
    sent_by = [json.loads(out.splitlines()[-1])["sent"] for out, _err in results]
    assert sum(sent_by) == 3000
    assert all(count > 0 for count in sent_by), sent_by  # the work was really split
    per_recipient = Counter(r.rcpt_tos[0] for r in smtp_server.received)
    assert sorted(per_recipient) == emails
    assert set(per_recipient.values()) == {1}
    with app.app_context():
        assert db.session.scalar(select(Issue.status)) == "sent"
        db.session.remove()
        db.engine.dispose()


def test_restart_after_sigkill_releases_the_dead_senders_leases_at_once(app_config, request):
    app, smtp_server, emails = _one_sender_issue(app_config, request, 1000)
    crashed = start_runner(app_config)
    wait_for(lambda: len(smtp_server.received) >= 300, "300 messages", crashed)
    kill_group(crashed)  # its batch stays leased for claim.LEASE

    # The clock is not moved: only releasing the dead sender's leases lets this one send.
    restarted = start_runner(app_config)
    out, err = restarted.communicate()

    assert restarted.returncode == 0, err[-2000:]
    summary = json.loads(out.splitlines()[-1])
    assert (summary["issues"], summary["leased"]) == ({"1": "sent"}, {})
    with app.app_context():
        sent = db.session.execute(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.status == "sent")
        )
        assert sorted(sent.scalars()) == emails  # each subscriber exactly one sent delivery
        db.session.remove()
    counts = Counter(message_ids(smtp_server.received))
    assert sorted({r.rcpt_tos[0] for r in smtp_server.received}) == emails
    assert sum(n - 1 for n in counts.values()) <= CONNECTIONS
