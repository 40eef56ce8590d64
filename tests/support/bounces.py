"""Helpers for the bounce tests: subscribers we mailed, and reports as MTAs and ISPs write them."""

import json
from pathlib import Path

from sqlalchemy import insert, select

from mailer import clock
from mailer.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber
from tests.support.deliveries import add_subscribers


def shared_reports(shared_dir: Path) -> tuple[Path, dict]:
    """../shared/data/bounces and its expected.json (file name: permanent/temporary lists)."""
    folder = shared_dir / "data" / "bounces"
    return folder, json.loads((folder / "expected.json").read_text(encoding="utf-8"))


def mailed(session, emails, number: int = 1, sent_at=None) -> dict[str, int]:
    """Confirmed subscribers for ``emails``, each sent issue ``number`` (at ``sent_at``, default
    now); returns {address: Delivery.id}."""
    sent_at = sent_at or clock.now()
    issue = Issue(number=number, period=f"2026-W{number:02d}", status=IssueStatus.SENT,
                  subject=f"Japan Weekly #{number}", text="t", html="<p>t</p>")  # fmt: skip
    session.add(issue)
    session.commit()
    known = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
    new = [e for e in emails if e not in known]
    if new:
        add_subscribers(session, new)
    ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
    rows = [
        {
            "issue_id": issue.id,
            "subscriber_id": ids[e],
            "status": DeliveryStatus.SENT,
            "attempts": 1,
            "created_at": sent_at,
            "sent_at": sent_at,
        }  # fmt: skip
        for e in emails
    ]
    session.execute(insert(Delivery), rows)
    session.commit()
    found = (
        select(Subscriber.email, Delivery.id).join(Delivery).where(Delivery.issue_id == issue.id)
    )
    return dict(session.execute(found).all())


def dsn(recipient: str, status: str = "5.1.1", *, to: str = "newsletter@example.com",
        original_id: str = "<x@example.org>", action: str = "failed") -> bytes:  # fmt: skip
    """An RFC 3464 delivery status notification, as Postfix writes one."""
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{recipient}-{status}-{to}@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {"550" if status[0] == "5" else "452"} {status} mailbox trouble <b>here</b>

--B1
Content-Type: text/rfc822-headers

From: Japan Weekly <newsletter@example.com>
To: {recipient}
Subject: Japan Weekly #1
Message-ID: {original_id}

--B1--
""".replace("\n", "\r\n").encode()


def arf(recipient: str, original_id: str = "<x@example.org>", return_path: str = "") -> bytes:
    """An RFC 5965 abuse report (a feedback loop's "this is spam")."""
    return f"""From: <fbl@isp.example.net>
To: <{return_path or "newsletter@example.com"}>
Subject: FW: Japan Weekly #1
Message-ID: <arf-{recipient}-{original_id}@isp.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F1"

--F1
Content-Type: text/plain

This is an email abuse report.

--F1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: <{recipient}>

--F1
Content-Type: message/rfc822

Return-Path: <{return_path or "newsletter@example.com"}>
From: Japan Weekly <newsletter@example.com>
To: {recipient}
Subject: Japan Weekly #1
Message-ID: {original_id}

Spam spam spam
--F1--
""".replace("\n", "\r\n").encode()


def out_of_office(sender: str, to: str = "newsletter@example.com") -> bytes:
    """A vacation auto-reply (RFC 3834) that mentions a failure-like phrase."""
    return f"""From: {sender}
To: {to}
Subject: Out of Office: Japan Weekly #1
Auto-Submitted: auto-replied
Message-ID: <ooo-{sender}@example.org>

I am away until Monday. Your message to {sender} could not be delivered to me in person.
""".replace("\n", "\r\n").encode()
