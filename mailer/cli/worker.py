"""``flask --app wsgi worker``: run the scheduler (weekly digest, feed refresh, sender loop)."""

import logging
import signal

import click
from apscheduler.events import EVENT_SCHEDULER_STARTED
from flask import current_app
from flask.cli import with_appcontext

from .. import clock
from .. import scheduler as schedule
from ..delivery.engine import stop_sending

log = logging.getLogger("mailer.worker")


@click.command("worker")
@with_appcontext
@click.option("--list-jobs", is_flag=True, help="Print the jobs and their next run; exit.")
def worker_command(list_jobs: bool) -> None:
    """Run the worker's scheduler in the foreground; Ctrl-C or SIGTERM stops it.

    Run exactly one scheduler per worker process, and never inside the web server.
    """
    _configure_logging()
    app = current_app._get_current_object()
    try:
        scheduler = schedule.build_scheduler(app)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if list_jobs:
        _print_jobs(scheduler)
        return
    decision = schedule.catch_up(app, scheduler)
    _stop_on_signals(scheduler)
    log.info("worker started; last weekly digest: %s (%s)", decision.period, decision.action)
    scheduler.start()  # returns once a signal stopped it
    log.info("worker stopped; a job still running finishes before the process exits")


def _stop_on_signals(scheduler) -> None:
    # Shut the scheduler down from the handler rather than raising: an exception raised in the
    # main thread while APScheduler submits a job is caught and logged by it, and the loop
    # would go on. A signal that comes before the scheduler runs is remembered and acted on
    # when it has started. No new job starts after this; a running send stops after the
    # message in flight (the rest stays queued); the executor's threads are joined at exit.
    requested = []

    def stop(*_):
        if requested and scheduler.running:
            stop_sending()
            scheduler.shutdown(wait=False)

    def on_signal(signum, _frame):
        log.info("%s received: stopping", signal.Signals(signum).name)
        requested.append(signum)
        stop()

    scheduler.add_listener(stop, EVENT_SCHEDULER_STARTED)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _print_jobs(scheduler) -> None:
    now = clock.now()
    for job in scheduler.get_jobs():
        when = getattr(job, "next_run_time", None) or job.trigger.get_next_fire_time(None, now)
        tz = scheduler.timezone
        click.echo(f"{job.id:14} next {when.astimezone(tz).isoformat()}  {job.trigger}")


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s"
        )
    # APScheduler logs each job added and each run at INFO, and the sender loop runs every few
    # seconds; its warnings and errors (a job raised, a run was missed) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
