"""The worker's schedule: jobs and triggers, the weekly time, and catching up a missed send."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select

from mailer import clock, create_app
from mailer import scheduler as schedule
from mailer.digest import schedule as weekly
from mailer.models import Delivery, DeliveryStatus, Issue, JobEvent
from tests.conftest import ROOT

JST = ZoneInfo("Asia/Tokyo")
# Monday 30 November 2026, 08:00 in Tokyo: a scheduled weekly digest time (ISO week 2026-W49).
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=JST)


def _config(**overrides) -> dict:
    config = {
        "MAILER_DIGEST_DAY": "monday",
        "MAILER_DIGEST_TIME": "08:00",
        "MAILER_TIMEZONE": "Asia/Tokyo",
        "MAILER_MISFIRE_GRACE": 6 * 3600,
    }
    config.update(overrides)
    return config


@pytest.fixture
def plain_app(tmp_path):
    """An app whose scheduler is inspected only (no database work)."""
    return create_app({"MAILER_INSTANCE_DIR": str(tmp_path)})


@pytest.mark.nodb
def test_jobs_are_registered_with_fixed_ids_and_their_triggers(plain_app):
    scheduler = schedule.build_scheduler(plain_app)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "weekly-digest",
        "feed-refresh",
        "sender-loop",
        "signups",
        "purge-pending",
        "feed-refresh-requests",
    }

    weekly = jobs["weekly-digest"].trigger
    assert isinstance(weekly, CronTrigger)
    fields = {f.name: str(f) for f in weekly.fields}
    assert (fields["day_of_week"], fields["hour"], fields["minute"]) == ("mon", "8", "0")
    assert str(weekly.timezone) == "Asia/Tokyo"

    refresh, sender = jobs["feed-refresh"].trigger, jobs["sender-loop"].trigger
    assert isinstance(refresh, IntervalTrigger) and refresh.interval == timedelta(hours=1)
    assert isinstance(sender, IntervalTrigger) and sender.interval == timedelta(seconds=5)
    assert jobs["signups"].trigger.interval == timedelta(seconds=5)
    purge = {f.name: str(f) for f in jobs["purge-pending"].trigger.fields}
    assert (purge["day_of_week"], purge["hour"], purge["minute"]) == ("*", "3", "17")

    assert jobs["weekly-digest"].func is schedule.weekly_digest_job
    assert jobs["sender-loop"].func is schedule.sender_job
    assert jobs["signups"].func is schedule.signup_job
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == 6 * 3600, "hours of grace, not APScheduler's 1 s"
        assert job.args == (plain_app,)


@pytest.mark.nodb
def test_intervals_follow_the_settings(tmp_path):
    app = create_app(
        {
            "MAILER_INSTANCE_DIR": str(tmp_path),
            "MAILER_FEED_REFRESH_MINUTES": 15,
            "MAILER_SENDER_INTERVAL": 2,
            "MAILER_MISFIRE_GRACE": 3600,
        }
    )
    jobs = {job.id: job for job in schedule.build_scheduler(app).get_jobs()}
    assert jobs["feed-refresh"].trigger.interval == timedelta(minutes=15)
    assert jobs["sender-loop"].trigger.interval == timedelta(seconds=2)
    assert jobs["weekly-digest"].misfire_grace_time == 3600


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Wednesday 2 Dec 2026, 12:00 UTC -> Monday 7 Dec, 08:00 in Tokyo.
        (datetime(2026, 12, 2, 12, 0, tzinfo=UTC), datetime(2026, 12, 7, 8, 0, tzinfo=JST)),
        # Monday 07:59 in Tokyo (Sunday 22:59 UTC) -> the same Monday, 08:00.
        (datetime(2026, 11, 29, 22, 59, tzinfo=UTC), MONDAY_0800),
        # Monday 08:30 in Tokyo -> the Monday after.
        (datetime(2026, 11, 29, 23, 30, tzinfo=UTC), datetime(2026, 12, 7, 8, 0, tzinfo=JST)),
    ],
)
def test_weekly_trigger_fires_next_on_monday_0800_in_tokyo(start, expected):
    fire = weekly.weekly_trigger(_config()).get_next_fire_time(None, start)
    assert fire == expected
    local = fire.astimezone(JST)
    assert (local.weekday(), local.hour, local.minute) == (0, 8, 0)


@pytest.mark.nodb
@pytest.mark.parametrize("day", ["monday", "Monday", "mon", " MON "])
def test_digest_day_names_in_any_case(day):
    assert weekly.digest_weekday(day) == "mon"


@pytest.mark.nodb
def test_other_day_and_time():
    trigger = weekly.weekly_trigger(_config(MAILER_DIGEST_DAY="friday", MAILER_DIGEST_TIME="17:30"))
    fire = trigger.get_next_fire_time(None, MONDAY_0800)
    assert fire == datetime(2026, 12, 4, 17, 30, tzinfo=JST)


@pytest.mark.nodb
@pytest.mark.parametrize("day", ["1", "0", "mo", "funday", ""])
def test_digest_day_must_be_a_name(day):
    # Numbers are refused: crontab's 1 is Monday, APScheduler 3's 1 is Tuesday.
    with pytest.raises(ValueError, match="MAILER_DIGEST_DAY"):
        weekly.digest_weekday(day)


@pytest.mark.nodb
@pytest.mark.parametrize("value", ["8am", "24:00", "08:60", "8", "08:0", ""])
def test_digest_time_must_be_hh_mm(value):
    with pytest.raises(ValueError, match="MAILER_DIGEST_TIME"):
        weekly.digest_time(value)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (MONDAY_0800 + timedelta(hours=2), MONDAY_0800),
        (MONDAY_0800, MONDAY_0800),
        (MONDAY_0800 - timedelta(minutes=1), MONDAY_0800 - timedelta(days=7)),
        (MONDAY_0800 + timedelta(days=6, hours=23), MONDAY_0800),
    ],
)
def test_last_weekly_time(now, expected):
    assert weekly.last_weekly_time(_config(), now) == expected


# --- catching up at start-up: real database, real SMTP server, the clock set by the test ---


def _prepare_week(session) -> None:
    """Two new items and three confirmed subscribers, as on an ordinary Monday morning."""
    from mailer.content.items import create_item
    from mailer.subscriptions.service import add_subscriber

    for n in (1, 2):
        create_item(
            session,
            section="news",
            title=f"Tokyo news {n}: 東京の話題",
            link=f"https://news.example.com/articles/{n}",
            summary="<p>Summary.</p>",
            published_at=MONDAY_0800 - timedelta(days=n),
        )
    session.commit()
    for address in ("ann@example.com", "bob@example.com", "chie@example.jp"):
        add_subscriber(session, address, confirmed=True, source="test")
    session.commit()


def test_worker_started_within_grace_sends_that_weeks_issue_once(app, session, smtp_server):
    clock.freeze(MONDAY_0800 - timedelta(days=1))
    _prepare_week(session)
    started = MONDAY_0800 + timedelta(hours=2)
    clock.freeze(started)
    scheduler = schedule.build_scheduler(app)

    decision = schedule.catch_up(app, scheduler)

    assert decision == weekly.CatchUp("run", "2026-W49", MONDAY_0800)
    assert scheduler.get_job("weekly-digest").next_run_time == started
    schedule.weekly_digest_job(app)  # what the scheduler runs at that next_run_time
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "ann@example.com",
        "bob@example.com",
        "chie@example.jp",
    ]
    session.expire_all()
    issue = session.scalar(select(Issue).where(Issue.period == "2026-W49"))
    sent = select(func.count()).where(Delivery.status == DeliveryStatus.SENT)
    assert session.scalar(sent) == 3

    # A second start, or the regular run firing as well, sends nothing more.
    again = schedule.catch_up(app, schedule.build_scheduler(app))
    assert again.action == "none"
    schedule.weekly_digest_job(app)
    assert len(smtp_server.received) == 3
    assert session.scalar(select(func.count()).select_from(Issue)) == 1
    assert issue.number == 1
    assert session.scalar(select(func.count()).select_from(JobEvent)) == 0


def test_worker_started_two_days_late_logs_a_missed_week_and_sends_nothing(
    app, session, smtp_server, caplog
):
    clock.freeze(MONDAY_0800 - timedelta(days=1))
    _prepare_week(session)
    clock.freeze(MONDAY_0800 + timedelta(days=2))
    scheduler = schedule.build_scheduler(app)

    decision = schedule.catch_up(app, scheduler)

    assert decision == weekly.CatchUp("missed", "2026-W49", MONDAY_0800)
    assert not hasattr(scheduler.get_job("weekly-digest"), "next_run_time"), "not moved to now"
    assert "missed week: 2026-W49" in caplog.text
    events = session.scalars(select(JobEvent)).all()
    assert [e.kind for e in events] == ["missed_week"]
    assert events[0].message.startswith("2026-W49: the weekly digest due 2026-11-30T08:00:00+09:00")
    assert "no worker ran then, and 2 days late is past MAILER_MISFIRE_GRACE" in events[0].message
    schedule.sender_job(app)
    assert smtp_server.received == []
    assert session.scalar(select(func.count()).select_from(Issue)) == 0

    # Restarting again records the missed week once only.
    schedule.catch_up(app, schedule.build_scheduler(app))
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(JobEvent)) == 1


def test_a_fresh_install_has_no_missed_week(app, session, smtp_server, caplog):
    clock.freeze(MONDAY_0800 + timedelta(days=2))  # first start, empty database

    decision = schedule.catch_up(app, schedule.build_scheduler(app))

    assert decision == weekly.CatchUp("none", "2026-W49", MONDAY_0800)
    assert "missed week" not in caplog.text
    assert session.scalar(select(func.count()).select_from(JobEvent)) == 0


def test_a_week_before_the_first_subscriber_is_not_missed(app, session):
    from mailer.subscriptions.service import add_subscriber

    clock.freeze(MONDAY_0800 + timedelta(days=1))  # installed after that Monday's send
    add_subscriber(session, "ann@example.com", confirmed=True, source="test")
    session.commit()
    clock.freeze(MONDAY_0800 + timedelta(days=2))

    assert schedule.catch_up(app, schedule.build_scheduler(app)).action == "none"
    assert session.scalar(select(func.count()).select_from(JobEvent)) == 0


@pytest.mark.parametrize(
    ("delay", "words"),
    [
        (timedelta(days=6, hours=13, minutes=59, seconds=41), "6 days 14 hours"),
        (timedelta(days=1, hours=1), "1 day 1 hour"),
        (timedelta(hours=6, minutes=1), "6 hours 1 minute"),
        (timedelta(minutes=45), "45 minutes"),
        (timedelta(seconds=10), "0 minutes"),
    ],
)
def test_lateness_is_given_in_words(delay, words):
    assert weekly.late_by(delay) == words


def test_a_week_without_new_items_is_not_reported_as_missed(app, session, smtp_server):
    clock.freeze(MONDAY_0800 + timedelta(seconds=1))
    schedule.weekly_digest_job(app)  # the regular run: nothing new this week

    assert session.scalar(select(func.count()).select_from(Issue)) == 0
    assert [e.kind for e in session.scalars(select(JobEvent))] == ["empty_week"]
    decision = weekly.check_last_week(session, app.config, MONDAY_0800 + timedelta(days=2))
    assert decision.action == "none"
    session.commit()
    assert [e.kind for e in session.scalars(select(JobEvent))] == ["empty_week"]
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("late", "action"),
    [
        (timedelta(0), "run"),
        (timedelta(hours=5, minutes=59), "run"),
        (timedelta(hours=6, minutes=1), "missed"),
    ],
)
def test_grace_period_boundary(app, session, late, action):
    from mailer.subscriptions.service import add_subscriber

    clock.freeze(MONDAY_0800 - timedelta(days=1))  # the service existed before that Monday
    add_subscriber(session, "ann@example.com", confirmed=True, source="test")
    session.commit()
    decision = weekly.check_last_week(session, app.config, MONDAY_0800 + late)
    assert decision.action == action


# --- the worker command as a process ---


@pytest.mark.e2e
@pytest.mark.nodb
def test_worker_command_stops_cleanly_on_sigterm(tmp_path):
    env = dict(os.environ)
    env.update(
        FLASK_DEBUG="1",
        MAILER_INSTANCE_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        MAILER_SMTP_PORT="9",  # nothing listens: the sender loop must not need a relay to idle
    )
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    worker = subprocess.Popen(
        [*flask, "worker"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        for line in worker.stderr:
            lines.append(line)
            if "worker started" in line:
                break
        assert worker.poll() is None, "".join(lines)
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, "".join(lines) + rest
    assert "worker stopped" in rest
