"""Claimer names and releasing the leases of a sender that stopped: real processes, both DBs."""

import logging
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer import clock
from mailer.delivery import dispatch as engine
from mailer.delivery.sender import claims as claim
from mailer.extensions import db
from mailer.models import Delivery, Issue
from tests.support.deliveries import add_subscribers, make_issue

T0 = clock.now().replace(microsecond=0)
HOST = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process that ran and was reaped (retried if the pid was taken again)."""
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        try:
            os.kill(child.pid, 0)
        except ProcessLookupError:
            return child.pid
    pytest.fail("every finished child's pid was in use again at once")


def other_boot() -> str:
    """A boot id that is not this boot's."""
    return "00000000" if claim.boot_id() != "00000000" else "11111111"


@pytest.mark.nodb
def test_worker_id_names_host_boot_pid_slot_and_a_random_part():
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
        boot = file.read().strip().replace("-", "")[:8]
    boot += f".{os.stat('/proc/self/ns/pid').st_ino}"  # and the pid namespace

    name = claim.worker_id(3)

    assert name.rsplit(":", 4) == [HOST, boot, str(os.getpid()), "3", name[-6:]]
    assert re.fullmatch(r"[0-9a-f]{6}", name[-6:])
    assert claim.worker_id(3) != name  # a restart in the same process gets a new name
    assert len(claim.worker_id(0)) <= 128


def lease(session, ids, name, *, until=None, status=None):
    """Lease the deliveries ``ids`` to ``name`` until ``until`` (default: T0 + LEASE)."""
    values = {"claimed_by": name, "claimed_until": until or T0 + claim.LEASE}
    if status is not None:
        values["status"] = status
        values["next_attempt_at"] = T0
    session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(**values))
    session.commit()


def claims(session) -> dict[int, tuple]:
    """{delivery id: (claimed_by, claimed_until)}, fresh from the database."""
    session.expire_all()
    rows = session.execute(select(Delivery.id, Delivery.claimed_by, Delivery.claimed_until))
    return {id_: (by, until) for id_, by, until in rows}


def release(issue_id: int, now=T0) -> int:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return claim.release_dead_claims(conn, issue_id, now)


def test_only_leases_of_a_dead_sender_of_this_host_and_boot_are_released(app, session, caplog):
    add_subscribers(session, [f"r{i}@example.com" for i in range(13)])
    first = make_issue(session, number=1)
    second = make_issue(session, number=2)
    engine.start_issue(session, 1)
    engine.start_issue(session, 2)
    one = session.scalars(select(Delivery.id).where(Delivery.issue_id == first.id)).all()
    two = session.scalars(select(Delivery.id).where(Delivery.issue_id == second.id)).all()
    pid, boot = dead_pid(), claim.boot_id()
    dead = f"{HOST}:{boot}:{pid}:0:abcdef"
    kept = {
        "live": f"{HOST}:{boot}:{os.getpid()}:0:abcdef",
        "other host": f"not-{HOST}:{boot}:{pid}:0:abcdef",
        "other boot": f"{HOST}:{other_boot()}:{pid}:0:abcdef",
        # Another container on this kernel: the same boot, another pid namespace.
        "other pid namespace": f"{HOST}:{boot.split('.')[0]}.1:{pid}:0:abcdef",
        "old name form": f"{HOST}:{pid}:0:abcdef",
        "cut short": f"{HOST}:{boot}:{pid}:0",
        "no pid": f"{HOST}:{boot}:x{pid}:0:abcdef",
    }
    lease(session, one[0:2], dead)  # queued: released
    lease(session, one[2:3], dead, status="deferred")  # deferred: released
    lease(session, one[3:4], dead, status="sent")  # sent: not a claim to give back
    lease(session, one[4:5], dead, status="failed")
    lease(session, two[0:1], dead)  # another issue: untouched
    for index, name in enumerate(kept.values(), start=5):
        lease(session, [one[index]], name)
    before = claims(session)

    with caplog.at_level(logging.INFO, logger="mailer.delivery.sender.claims"):
        released = release(first.id)

    assert released == 3
    after = claims(session)
    assert {i: after[i] for i in one[0:3]} == dict.fromkeys(one[0:3], (None, None))
    untouched = [i for i in before if i not in one[0:3]]
    assert {i: after[i] for i in untouched} == {i: before[i] for i in untouched}
    assert [after[one[i]][0] for i in range(5, 12)] == list(kept.values())
    assert f"released 3 deliveries leased by a sender that stopped (pid {pid})" in caplog.text
    assert release(first.id) == 0  # nothing left to release


def test_an_ended_lease_is_left_as_it_is(app, session):
    add_subscribers(session, ["a@example.com"])
    issue = make_issue(session)
    engine.start_issue(session, 1)
    ids = session.scalars(select(Delivery.id)).all()
    ended = T0 - timedelta(seconds=1)
    lease(session, ids, f"{HOST}:{claim.boot_id()}:{dead_pid()}:0:abcdef", until=ended)

    assert release(issue.id) == 0  # already claimable by anyone: nothing to do
    assert claims(session)[ids[0]][1] == ended


def test_send_pending_sends_a_dead_senders_rows_without_waiting_for_its_lease(
    app, session, smtp_server
):
    clock.freeze(T0)
    add_subscribers(session, ["a@example.com", "b@example.com"])
    make_issue(session)
    engine.start_issue(session, 1)
    issue_id = session.scalar(select(Issue.id))
    session.remove()
    dead = f"{HOST}:{claim.boot_id()}:{dead_pid()}:0:abcdef"
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        taken = claim.claim_batch(conn, issue_id=issue_id, worker=dead, size=10, now=T0)
    assert len(taken) == 2

    summary = engine.send_pending(app)  # the clock has not moved

    assert (summary.sent, summary.issues, summary.leased) == (2, {1: "sent"}, {})
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "a@example.com",
        "b@example.com",
    ]


def test_rows_leased_by_a_live_sender_are_reported_not_sent(app, session, smtp_server):
    clock.freeze(T0)
    add_subscribers(session, ["a@example.com", "b@example.com", "c@example.com"])
    make_issue(session)
    engine.start_issue(session, 1)
    ids = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    lease(session, ids[:2], f"elsewhere:{claim.boot_id()}:1:0:abcdef")
    lease(session, ids[2:], "another-sender", until=T0 + timedelta(minutes=2))

    summary = engine.send_pending(app)

    assert (summary.sent, summary.issues) == (0, {1: "sending"})
    assert summary.leased == {1: claim.Leases(count=3, until=T0 + claim.LEASE)}
    assert smtp_server.received == []


def test_the_worker_logs_rows_waiting_for_another_senders_lease_once(
    app, session, smtp_server, caplog
):
    from mailer import scheduler

    clock.freeze(T0)
    add_subscribers(session, ["a@example.com", "b@example.com"])
    make_issue(session)
    engine.start_issue(session, 1)
    ids = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    lease(session, ids, f"elsewhere:{claim.boot_id()}:1:0:abcdef")
    session.remove()
    until = f"{T0 + claim.LEASE:%H:%M}"

    with caplog.at_level(logging.INFO, logger="mailer.scheduler"):
        scheduler.sender_job(app)
        scheduler.sender_job(app)

    wanted = f"issue #1: 2 deliveries are leased by another sender until {until} UTC"
    assert caplog.text.count(wanted) == 1
    assert smtp_server.received == []
