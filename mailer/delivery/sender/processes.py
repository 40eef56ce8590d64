"""Running senders: one in this process, or one in each of several sender processes.

``MAILER_SMTP_CONNECTIONS`` relay connections are split over ``MAILER_SENDER_PROCESSES``
processes (see :func:`plan`); each process runs one :class:`~.sender.IssueSender` that keeps
its share of the connections busy from a single thread. Several processes let several cores
work (the per-message Python work holds the GIL, so one process uses at most one core).

Processes are started with the ``spawn`` method, never ``fork``: the parent may have threads
(APScheduler's pool, the SMTP test server) whose locks a forked child would inherit held,
and open database connections that must not be shared. A spawned child starts a fresh
interpreter, builds the app from the same configuration values (:func:`portable_config`)
and opens its own engine; there is nothing inherited to dispose of. As with any use of
``spawn``, a script that calls ``send_pending`` must guard its top level with
``if __name__ == "__main__":`` (the ``flask`` command, gunicorn and pytest do), because a
child imports the parent's main module.
"""

import logging
import multiprocessing
import pickle
import queue as queue_module
import signal
import threading
from collections.abc import Callable, Mapping
from types import SimpleNamespace

from flask import Flask

from ...extensions import db
from ...models import Issue
from .. import message
from ..ledger import Tally
from .loop import IssueSender
from .statements import checkpoint

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between progress reports
CHECKPOINT_EVERY = 1.0  # seconds between SQLite WAL checkpoints while senders work
Report = Callable[[Tally], None]


def plan(config: Mapping, dialect: str = "postgresql") -> list[int]:
    """Split the connections over the processes: e.g. 4 connections, 2 processes -> [2, 2].

    Never more processes than connections; at least one of each. On SQLite always one
    process: SQLite has one writer at a time, and writers in different processes wait for
    each other in SQLite's busy handler (a millisecond or more per collision). Measured on
    the benchmark machine (2 cores), one process driving 4 connections sent about a third
    more messages per second than two processes with 2 connections each.
    """
    connections = max(1, int(config["MAILER_SMTP_CONNECTIONS"]))
    processes = max(1, min(int(config["MAILER_SENDER_PROCESSES"]), connections))
    if dialect == "sqlite":
        processes = 1
    base, extra = divmod(connections, processes)
    return [base + (index < extra) for index in range(processes)]


def rate_share(config: Mapping) -> float:
    """Each connection's share of ``MAILER_SEND_RATE`` (messages/s; 0 stays unlimited)."""
    return float(config["MAILER_SEND_RATE"]) / max(1, int(config["MAILER_SMTP_CONNECTIONS"]))


def run_here(
    app: Flask, issue_id: int, compiled, connections: int, *, rate: float, stop, report: Report
) -> tuple[Tally, list[str]]:
    """Run one sender with ``connections`` relay connections in this thread.

    Args:
        rate: messages/s per connection (0 = unlimited).
        stop: an Event; once set, the sender finishes the messages on the wire and returns.
        report: gets the running counts every ``POLL`` seconds.

    Returns:
        (the counts, errors): a sender stopped by an unexpected error (e.g. the database went
        away) is logged and listed, never lost; its unsent rows wait for their lease to end.
    """
    sender = IssueSender(
        db.engine, app.config, issue_id, compiled, connections=connections,
        rate=rate * connections, stop=stop,
    )  # fmt: skip
    errors: list[str] = []
    checkpoints = _Checkpoints(db.engine)
    try:
        sender.run(tick=lambda: report(sender.tally), every=POLL)
    except Exception as exc:  # noqa: BLE001 - reported by the caller, never lost
        log.exception("sender %s stopped by an error", sender.rows.worker)
        errors.append(f"sender {sender.rows.worker}: {type(exc).__name__}: {exc}")
    finally:
        checkpoints.stop()
    report(sender.tally)
    return sender.tally, errors


class _Checkpoints:
    """SQLite WAL checkpoints every ``CHECKPOINT_EVERY`` seconds in a helper thread.

    SQLite does the copying and the disk syncs without holding the GIL, so on a second core
    they overlap with the sender instead of stalling its loop. Nothing to do on PostgreSQL.
    """

    def __init__(self, engine):
        self.engine = engine
        self.done = threading.Event()
        self.thread = None
        if engine.dialect.name == "sqlite":
            self.thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(CHECKPOINT_EVERY):
            try:
                checkpoint(self.engine)
            except Exception:  # noqa: BLE001 - a failed checkpoint is retried next time
                log.exception("WAL checkpoint failed")

    def stop(self) -> None:
        """Stop the helper thread and checkpoint once more."""
        self.done.set()
        if self.thread is not None:
            self.thread.join()
            checkpoint(self.engine)


def portable_config(config: Mapping) -> SimpleNamespace:
    """The app's settings as a picklable object that ``create_app`` accepts in a child."""
    values = {}
    for key, value in config.items():
        if not key.isupper():
            continue
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - an unpicklable extension object: not a setting
            continue
        values[key] = value
    return SimpleNamespace(**values)


def run_processes(
    app: Flask, factory, issue_id: int, shares: list[int], *, rate: float, stop, report: Report
) -> tuple[Tally, list[str]]:
    """Run one spawned process per entry of ``shares`` (its number of connections).

    ``factory`` builds each child's app from the parent's settings (``mailer.create_app``;
    it must be a module-level function, since ``spawn`` pickles it by name).

    Returns the total of all processes and the errors of any that failed. Ctrl-C, or
    ``stop`` (a threading.Event) being set, asks the children to stop after their current
    message; this waits for them.
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child_stop = context.Event()
    config = portable_config(app.config)
    processes = [
        context.Process(
            target=child_main,
            args=(factory, config, issue_id, connections, rate, index, results, child_stop),
            name=f"mailer-sender-{index}",
        )
        for index, connections in enumerate(shares)
    ]
    for process in processes:
        process.start()
    try:
        return _collect(processes, results, report, (stop, child_stop))
    except KeyboardInterrupt:
        child_stop.set()
        _collect(processes, results, lambda tally: None, (stop, child_stop))
        raise


def _collect(processes, results, report: Report, stops) -> tuple[Tally, list[str]]:
    # Drain the queue until every child has said its last word (or died): a child that
    # still has unread items on the queue cannot exit (multiprocessing's join caveat).
    latest: dict[int, dict] = {}
    finished: dict[int, list[str]] = {}
    while len(finished) < len(processes):
        if stops[0].is_set():
            stops[1].set()
        try:
            index, counts, errors = results.get(timeout=POLL)
        except queue_module.Empty:
            _note_dead(processes, finished)
            continue
        latest[index] = counts
        if errors is not None:
            finished[index] = errors
        report(_sum(latest))
    for process in processes:
        process.join()
    return _sum(latest), [error for errors in finished.values() for error in errors]


def _note_dead(processes, finished: dict[int, list[str]]) -> None:
    # A child killed before its last report: its leases expire and its rows are sent again.
    for index, process in enumerate(processes):
        if index not in finished and process.exitcode not in (None, 0):
            finished[index] = [f"sender process {index} died (exit code {process.exitcode})"]


def _sum(latest: dict[int, dict]) -> Tally:
    total = Tally()
    for counts in latest.values():
        total.add(Tally(**counts))
    return total


def child_main(factory, config, issue_id: int, connections: int, rate, index: int, results, stop):
    """Entry point of a sender process: build the app, compile the issue, run the senders.

    Reports ``(index, counts, None)`` while running and ``(index, counts, errors)`` at the
    end on ``results``. Ignores SIGINT: the parent sets ``stop`` instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    app = factory(config)
    with app.app_context():
        issue = db.session.get(Issue, issue_id)
        compiled = message.compile_variants(issue, app.config)
        db.session.remove()
        total, errors = run_here(
            app, issue_id, compiled, connections, rate=rate, stop=stop,
            report=lambda tally: results.put((index, tally.as_dict(), None)),
        )  # fmt: skip
        db.engine.dispose()
    results.put((index, total.as_dict(), errors))
