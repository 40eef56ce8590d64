"""Issue 12: during a send the worker logged APScheduler's "skipped: maximum number of running
instances" every 5 s (about 720 lines an hour). Now: one line when a send starts and one
when it ends, with its counts; a skipped weekly digest still shows."""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailer import clock
from mailer import scheduler as schedule
from mailer.content.items import create_item
from tests.support.admin import add_subscribers

# APScheduler 3's own words (apscheduler/schedulers/base.py, _process_jobs).
SKIPPED = 'Execution of job "%s" skipped: maximum number of running instances reached (%d)'
MONDAY = datetime(2026, 12, 7, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_skipped_runs_of_the_busy_loops_are_not_logged(app, caplog):
    scheduler = schedule.build_scheduler(app)
    apscheduler_log = logging.getLogger("apscheduler.scheduler")
    with caplog.at_level(logging.WARNING, logger="apscheduler"):
        for job_id in (schedule.SENDER_JOB, schedule.SIGNUP_JOB):
            apscheduler_log.warning(SKIPPED, scheduler.get_job(job_id), 1)
        apscheduler_log.warning(SKIPPED, scheduler.get_job(schedule.WEEKLY_DIGEST_JOB), 1)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and messages[0].startswith('Execution of job "weekly_digest_job')
    schedule.build_scheduler(app)  # a second scheduler installs no second filter
    assert len(apscheduler_log.filters) == 1


def test_a_send_logs_one_line_at_its_start_and_one_with_counts_at_its_end(
    app, session, smtp_server, caplog
):
    clock.freeze(MONDAY - timedelta(days=1))
    add_subscribers(session, 3)
    create_item(
        session,
        section="news",
        title="Shinkansen timetable change",
        link="https://news.example.com/1",
        summary="<p>Summary.</p>",
        published_at=clock.now() - timedelta(hours=1),
    )
    session.commit()
    clock.freeze(MONDAY)
    with caplog.at_level(logging.INFO, logger="mailer"):
        schedule.weekly_digest_job(app)
        schedule.sender_job(app)  # nothing left: says nothing
    lines = [r.getMessage() for r in caplog.records if r.name == "mailer.delivery.dispatch"]
    assert lines == [
        "issue #1: send started, 3 deliveries due",
        "issue #1: send ended: 3 sent, 0 deferred, 0 failed, 0 skipped",
        "Issue #1 sent",
    ]
    assert len(smtp_server.received) == 3
