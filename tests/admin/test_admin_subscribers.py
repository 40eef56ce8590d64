"""Subscribers: search, filter, keyset pages, detail, unsubscribe, erase, CSV import and export."""

import csv
import io
import re
import tracemalloc
import types

import pytest
from flask import request_finished
from sqlalchemy import event, func, select

from mailer.extensions import db
from mailer.models import (
    ConsentEvent,
    Subscriber,
    SubscriberStatus,
    Suppression,
    TransactionalMail,
)
from mailer.subscriptions import service
from tests.support.admin import add_subscribers, post, signed_in_client


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def _addresses(html: str) -> list[str]:
    return re.findall(r'/admin/subscribers/\d+">([^<]+)</a>', html)


def _link(html: str, label: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)">{re.escape(label)}</a>', html)
    return match.group(1).replace("&amp;", "&") if match else None


class StatementLog:
    """Records the SQL statements run on the app's engine while active."""

    def __init__(self, app):
        self.app = app
        self.statements: list[str] = []
        self.offsets: list[object] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)
        if "OFFSET" in statement.upper():
            # SQLAlchemy's SQLite dialect always writes "LIMIT ? OFFSET ?"; keep the value.
            self.offsets.append(parameters[-1])

    def __enter__(self):
        with self.app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_search_is_case_insensitive_and_filters_by_status(admin_client, session):
    service.add_subscriber(session, "Hanako.Yamada@Example.jp", confirmed=True, source="admin")
    service.add_subscriber(session, "taro@example.jp", confirmed=False, source="admin")
    service.add_subscriber(session, "other@example.com", confirmed=True, source="admin")

    html = admin_client.get("/admin/subscribers?q=YAMADA").get_data(as_text=True)
    assert _addresses(html) == ["Hanako.Yamada@example.jp"]
    html = admin_client.get("/admin/subscribers?q=example.jp&status=pending").get_data(as_text=True)
    assert _addresses(html) == ["taro@example.jp"]
    html = admin_client.get("/admin/subscribers?status=confirmed").get_data(as_text=True)
    assert sorted(_addresses(html)) == ["Hanako.Yamada@example.jp", "other@example.com"]
    # Wildcards typed by the admin are literal characters.
    assert _addresses(admin_client.get("/admin/subscribers?q=%25").get_data(as_text=True)) == []


def test_pages_walk_every_subscriber_once_by_keyset_without_offset_or_count(
    app, admin_client, session
):
    add_subscribers(session, 120)
    seen: list[str] = []
    url = "/admin/subscribers?status=confirmed"
    with StatementLog(app) as log:
        while url:
            html = admin_client.get(url).get_data(as_text=True)
            page = _addresses(html)
            assert len(page) <= 50
            seen += page
            url = _link(html, "Older →")
    assert len(seen) == 120
    assert len(set(seen)) == 120
    assert seen[0] == "reader00119@example.com"  # newest first
    subscriber_queries = [s for s in log.statements if "FROM subscriber" in s]
    assert subscriber_queries
    assert set(log.offsets) <= {0}  # keyset pages: never skip rows with OFFSET n
    for statement in subscriber_queries:
        assert "count(" not in statement.lower()

    # And back: "Newer" from the last page returns the previous one.
    html = admin_client.get(
        "/admin/subscribers?status=confirmed&after=" + str(_min_id(session) + 20)
    ).get_data(as_text=True)
    assert len(_addresses(html)) == 20
    newer = _link(html, "← Newer")
    back = _addresses(admin_client.get(newer).get_data(as_text=True))
    assert len(back) == 50
    assert back[-1] == "reader00020@example.com"


def _min_id(session) -> int:
    return session.scalar(select(func.min(Subscriber.id)))


def test_subscriber_page_shows_consent_history(admin_client, session):
    subscriber = service.add_subscriber(
        session, "hanako@example.jp", confirmed=True, source="import:list.csv"
    )
    html = admin_client.get(f"/admin/subscribers/{subscriber.id}").get_data(as_text=True)
    assert "hanako@example.jp" in html
    assert "imported" in html  # the consent event's action
    assert "consent given elsewhere" in html
    assert "No deliveries." in html


def test_unsubscribe_on_behalf_of_a_subscriber(admin_client, session):
    subscriber = service.add_subscriber(session, "leaving@example.com", confirmed=True, source="t")
    response = post(
        admin_client, f"/admin/subscribers/{subscriber.id}/unsubscribe", follow_redirects=True
    )
    assert "leaving@example.com is unsubscribed." in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Subscriber, subscriber.id).status == SubscriberStatus.UNSUBSCRIBED
    event_row = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == "unsubscribed")
    ).one()
    assert event_row.source == "admin:admin@example.com"


def test_erase_needs_confirmation_then_deletes(admin_client, session):
    subscriber = service.add_subscriber(session, "gone@example.com", confirmed=True, source="t")
    url = f"/admin/subscribers/{subscriber.id}/erase"
    assert "Erase for good" in admin_client.get(url).get_data(as_text=True)
    refused = post(admin_client, url, {}, token_from=url)
    assert refused.status_code == 200
    assert session.get(Subscriber, subscriber.id) is not None
    response = post(admin_client, url, {"confirm": "y"}, token_from=url)
    assert response.status_code == 302
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert session.scalars(select(Suppression)).one().reason == "erased"


def _import(client, content: str, consent: str):
    data = {
        "file": (io.BytesIO(content.encode()), "people.csv"),
        "consent": consent,
    }
    return post(
        client,
        "/admin/subscribers/import",
        data,
        token_from="/admin/subscribers/import",
        content_type="multipart/form-data",
    )


def _report(html: str) -> dict[str, int]:
    return {
        name: int(re.search(rf'id="report-{name}">(\d+)<', html).group(1))
        for name in ("added", "updated", "invalid", "suppressed", "duplicates")
    }


def test_import_reports_valid_invalid_duplicate_and_erased_rows(admin_client, session):
    erased = service.add_subscriber(session, "erased@example.com", confirmed=True, source="t")
    service.erase_subscriber(session, erased)
    service.add_subscriber(session, "left@example.com", confirmed=True, source="t")
    left = session.scalars(select(Subscriber)).one()
    service.unsubscribe_subscriber(session, left)
    content = (
        "email,name\n"
        "alice@example.com,Alice\n"
        "not-an-address,Bad\n"
        "Bob@Example.com,Bob\n"
        "bob@example.com,Bob again\n"
        "ERASED@example.com,Erased\n"
        "left@example.com,Left\n"
    )
    response = _import(admin_client, content, "consented")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _report(html) == {
        "added": 2,
        "updated": 0,
        "invalid": 1,
        "suppressed": 2,
        "duplicates": 1,
    }
    assert "Line 3:" in html and "not-an-address" in html

    session.rollback()  # a fresh read: end the snapshot of the last transaction
    rows = {s.email.lower(): s for s in session.scalars(select(Subscriber))}
    assert set(rows) == {"alice@example.com", "bob@example.com", "left@example.com"}
    assert rows["alice@example.com"].status == SubscriberStatus.CONFIRMED
    assert rows["left@example.com"].status == SubscriberStatus.UNSUBSCRIBED  # not re-added
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == rows["alice@example.com"].id)
    ).all()
    assert [e.action for e in events] == ["imported"]
    assert events[0].source == "import:people.csv"
    assert session.scalar(select(func.count()).select_from(TransactionalMail)) == 0


def test_import_with_double_opt_in_adds_pending_and_queues_confirmations(admin_client, session):
    response = _import(admin_client, "email\nnew1@example.com\nnew2@example.com\n", "opt_in")
    assert _report(response.get_data(as_text=True))["added"] == 2
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    statuses = {s.status for s in session.scalars(select(Subscriber))}
    assert statuses == {SubscriberStatus.PENDING}
    mails = session.scalars(select(TransactionalMail)).all()
    assert sorted(m.recipient for m in mails) == ["new1@example.com", "new2@example.com"]


def test_import_of_a_file_without_email_column_is_refused(admin_client, session):
    response = _import(admin_client, "name\nAlice\n", "consented")
    assert response.status_code == 400
    assert "email" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_import_needs_a_consent_choice(admin_client, session):
    response = _import(admin_client, "email\na@example.com\n", "")
    assert "Choose how to handle consent." in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def _export_rows(client, query: str = "") -> list[dict]:
    response = client.get("/admin/subscribers/export.csv" + query)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_export_of_one_status_or_all(admin_client, session):
    add_subscribers(session, 3)
    add_subscribers(session, 2, status=SubscriberStatus.PENDING, prefix="wait")
    assert len(_export_rows(admin_client)) == 5
    pending = _export_rows(admin_client, "?status=pending")
    assert [row["email"] for row in pending] == ["wait00000@example.com", "wait00001@example.com"]
    assert pending[0]["status"] == "pending"
    assert pending[0]["created_at"].endswith("+00:00")


def test_export_neutralises_spreadsheet_formulas(admin_client, session):
    service.add_subscriber(session, "=cmd@example.com", confirmed=True, source="t")
    (row,) = _export_rows(admin_client)
    assert row["email"] == "'=cmd@example.com"


def _peak_while_streaming(client) -> tuple[int, int]:
    """Consume the export and return (data rows, tracemalloc peak in bytes)."""
    sent = []

    def keep(sender, response, **extra):
        sent.append(response)

    with request_finished.connected_to(keep, client.application):
        response = client.get("/admin/subscribers/export.csv")
    # The view answered with a generator (nothing read yet), sent without Content-Length.
    assert isinstance(sent[0].response, types.GeneratorType)
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    tracemalloc.start()
    try:
        lines = sum(chunk.count(b"\r\n") for chunk in response.response)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()
    return lines - 1, peak


def test_export_streams_in_batches_with_flat_memory(app, admin_client, session):
    # 2,000 rows: two batches, so the peak already holds what the walk ever holds at once
    # (the batch being written and the next one being read).
    add_subscribers(session, 2000, prefix="a")
    _peak_while_streaming(admin_client)  # warm-up: compiled statements, caches
    rows_small, peak_small = _peak_while_streaming(admin_client)
    add_subscribers(session, 8000, prefix="b")
    with StatementLog(app) as log:
        rows_large, peak_large = _peak_while_streaming(admin_client)
    assert (rows_small, rows_large) == (2000, 10000)
    # Five times the rows, about the same memory (a buffered export would need five times).
    assert peak_large < 1.5 * peak_small, (peak_small, peak_large)
    batches = [s for s in log.statements if "FROM subscriber" in s]
    assert len(batches) == 11  # 10 full batches and the empty one that ends the walk
    assert all("LIMIT" in s.upper() for s in batches)
    assert set(log.offsets) <= {0}
