"""``flask --app wsgi worker``: run the scheduler (weekly digest, feed refresh, sender loop)."""

import logging
import signal

import click
from flask import current_app

from .. import clock
from .. import scheduler as schedule

log = logging.getLogger("mailer.worker")


class _Stop(Exception):
    """Raised in the main thread by SIGTERM so that the scheduler stops like on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Stop


@click.command("worker")
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
    signal.signal(signal.SIGTERM, _on_sigterm)
    log.info("worker started; last weekly digest: %s (%s)", decision.period, decision.action)
    try:
        scheduler.start()
    except (KeyboardInterrupt, _Stop):
        log.info("stopping: waiting for running jobs to finish")
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
    log.info("worker stopped")


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
    # APScheduler logs every run at INFO; the sender loop runs every few seconds.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
