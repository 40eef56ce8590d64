"""``flask --app wsgi worker``: run the scheduler (weekly digest, feed refresh, sender loop)."""

import logging
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import clock
from ..delivery import stop_sending

log = logging.getLogger("mailer.worker")


@click.command("worker")
@with_appcontext
@click.option("--list-jobs", is_flag=True, help="Print the jobs and their next run; exit.")
def worker_command(list_jobs: bool) -> None:
    """Run the worker's scheduler in the foreground; Ctrl-C or SIGTERM stops it.

    Run exactly one scheduler per worker process, and never inside the web server.
    """
    # APScheduler's scheduler (about 0.1 s to import) only for this command, not for every
    # `flask` start (`flask --help` lists this command without running it).
    from .. import scheduler as schedule  # noqa: PLC0415

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
    stopper = _stop_on_signals(scheduler)
    log.info("worker started; last weekly digest: %s (%s)", decision.period, decision.action)
    scheduler.start()  # returns once the stopper shut it down
    stopper.join()
    log.info("worker stopped")


def _stop_on_signals(scheduler) -> threading.Thread:
    """Make SIGINT and SIGTERM stop ``scheduler``; return the thread that does it.

    The handler only sets an Event. Shutting down inside the handler could deadlock (it
    interrupts the main thread, maybe while that holds a lock shutdown needs, e.g. when
    submitting a job), and raising there is no better: APScheduler catches and logs an
    exception raised while it submits a job, and goes on. So a thread waits for the Event and
    for the scheduler to have started, asks a running send to stop after the message in
    flight (the rest stays queued), and shuts the scheduler down, waiting for running jobs.
    """
    requested, started = threading.Event(), threading.Event()

    def stop() -> None:
        requested.wait()
        started.wait()
        log.info("stopping: no new jobs; waiting for the running ones")
        stop_sending()
        scheduler.shutdown(wait=True)

    from apscheduler.events import EVENT_SCHEDULER_STARTED  # noqa: PLC0415 - see above

    scheduler.add_listener(lambda _event: started.set(), EVENT_SCHEDULER_STARTED)
    signal.signal(signal.SIGINT, lambda *_: requested.set())
    signal.signal(signal.SIGTERM, lambda *_: requested.set())
    stopper = threading.Thread(target=stop, name="worker-stopper", daemon=True)
    stopper.start()
    return stopper


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
