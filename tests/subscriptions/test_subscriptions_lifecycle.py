"""Erasure, operator additions (CLI, import), bounces and the purge job (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer import clock
from mailer.models import (
    ConsentEvent,
    Delivery,
    Issue,
    Subscriber,
    Suppression,
    TransactionalMail,
)
from mailer.subscriptions import service
from mailer.subscriptions.addresses import email_hash
from mailer.subscriptions.errors import InvalidAddress, Suppressed
from mailer.subscriptions.tokens import make_unsubscribe_token
from tests.support.signup import confirm_path, confirmation_mails, events, subscriber

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def _unsubscribe_path(app, sub):
    return f"/unsubscribe/{make_unsubscribe_token(app.config['SECRET_KEY'], sub.id, sub.version)}"


def _with_delivery(session, sub) -> None:
    issue = Issue(number=1, period="2026-W10", subject="Week 10", html="<p>x</p>", text="x")
    session.add(issue)
    session.flush()
    session.add(Delivery(issue_id=issue.id, subscriber_id=sub.id, status="sent"))
    session.commit()


def test_erasure_from_the_unsubscribe_page_keeps_only_a_keyed_hash(app, client, session):
    client.post("/subscribe", data={"email": "Erase.Me@Example.com"})
    client.post(confirm_path(session, "Erase.Me@example.com"))
    sub = subscriber(session, "Erase.Me@example.com")
    _with_delivery(session, sub)
    path = _unsubscribe_path(app, sub)
    unticked = client.post(path, data={"action": "erase"})
    assert unticked.status_code == 400 and "Tick the box" in unticked.get_data(as_text=True)
    assert subscriber(session, "Erase.Me@example.com") is not None
    response = client.post(path, data={"action": "erase", "confirm": "yes"})
    assert response.status_code == 200
    assert "Your data is erased" in response.get_data(as_text=True)
    session.expire_all()
    for model in (Subscriber, ConsentEvent, Delivery, TransactionalMail):
        assert session.query(model).count() == 0, model
    (kept,) = session.query(Suppression).all()
    assert kept.reason == "erased"
    assert kept.email_hash == email_hash(app.config["SECRET_KEY"], "erase.me@example.com")
    # The old links now say so, without an error.
    assert "not on the list" in client.get(path).get_data(as_text=True)
    assert client.post(path).status_code == 200
    assert client.post(path, data={"action": "erase", "confirm": "yes"}).status_code == 200


def test_operators_cannot_add_back_an_erased_address_but_the_person_can(app, session, client):
    sub = service.add_subscriber(session, "back@example.com", confirmed=True, source="cli")
    service.erase_subscriber(session, sub)
    with pytest.raises(Suppressed):
        service.add_subscriber(session, "BACK@example.com", confirmed=True, source="admin")
    report = service.import_csv(
        session, ["email\n", "back@example.com\n"], confirmed=True, source="import:x.csv"
    )
    assert (report.added, report.suppressed) == (0, 1)
    # Double opt-in on the web is the person's own new consent.
    assert client.post("/subscribe", data={"email": "back@example.com"}).status_code == 200
    client.post(confirm_path(session, "back@example.com"))
    assert subscriber(session, "back@example.com").status == "confirmed"
    assert session.query(Suppression).count() == 0


def test_add_subscriber_confirmed_records_operator_consent_without_mail(session):
    sub = service.add_subscriber(
        session, "Ops@Example.com", confirmed=True, source="cli", ip="10.0.0.9"
    )
    assert (sub.email, sub.status, sub.source, sub.confirmed_at) == (
        "Ops@example.com",
        "confirmed",
        "cli",
        T0,
    )
    event = session.query(ConsentEvent).one()
    assert (event.action, event.source, event.ip_address) == (
        "added_by_operator",
        "cli",
        "10.0.0.9",
    )
    assert "consent given elsewhere" in event.detail
    assert confirmation_mails(session) == []


def test_add_subscriber_pending_sends_double_opt_in_and_later_confirm_updates(session):
    sub = service.add_subscriber(session, "p@example.com", confirmed=False, source="admin")
    assert sub.status == "pending"
    assert len(confirmation_mails(session, "p@example.com")) == 1
    again = service.add_subscriber(session, "p@example.com", confirmed=True, source="admin")
    assert (again.id, again.status) == (sub.id, "confirmed")
    assert events(session, sub.id) == ["added_by_operator", "confirmed_by_operator"]


def test_add_subscriber_refuses_leavers_and_bad_addresses(session):
    sub = service.add_subscriber(session, "left@example.com", confirmed=True, source="cli")
    service.unsubscribe_subscriber(session, sub, source="admin:ops@example.com")
    with pytest.raises(Suppressed, match="unsubscribed"):
        service.add_subscriber(session, "left@example.com", confirmed=True, source="cli")
    with pytest.raises(InvalidAddress):
        service.add_subscriber(session, "not an address", confirmed=True, source="cli")
    assert session.query(Subscriber).count() == 1


def test_cli_add_and_list(runner, session):
    result = runner.invoke(args=["subscribers", "add", "cli@example.com", "--confirmed"])
    assert result.exit_code == 0, result.output
    assert "cli@example.com: confirmed" in result.output
    result = runner.invoke(args=["subscribers", "add", "wait@example.com"])
    assert "wait@example.com: pending" in result.output
    bad = runner.invoke(args=["subscribers", "add", "Jane <j@example.com>"])
    assert bad.exit_code == 1 and "angle brackets" in bad.output
    listed = runner.invoke(args=["subscribers", "list"])
    lines = listed.output.strip().splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [
        ["confirmed", "cli@example.com"],
        ["pending", "wait@example.com"],
    ]
    pending = runner.invoke(args=["subscribers", "list", "--status", "pending"])
    assert pending.output.count("\n") == 1 and "wait@example.com" in pending.output


def test_cli_import_reports_bad_rows_and_goes_on(runner, session, tmp_path):
    service.add_subscriber(session, "old@example.com", confirmed=False, source="cli")
    gone = service.add_subscriber(session, "gone@example.com", confirmed=True, source="cli")
    service.unsubscribe_subscriber(session, gone)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        "\ufeffName,EMAIL\n"
        "Ann,ann@example.com\n"
        "Bob,not-an-address\n"
        "Ann again,ANN@example.com\n"
        "Old,old@example.com\n"
        "Gone,gone@example.com\n"
        "Empty,\n"
        'Quoted,"""q""@example.com"\n'
        "Ken,ken@example.jp\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["subscribers", "import", str(csv_file), "--confirmed"])
    assert result.exit_code == 0, result.output
    assert "added 2, updated 1, duplicates 1, suppressed 1, invalid 3" in result.output
    assert "line 3:" in result.output and "line 7: the email cell is empty" in result.output
    assert "line 8:" in result.output
    statuses = {s.email: s.status for s in session.query(Subscriber)}
    assert statuses == {
        "ann@example.com": "confirmed",
        "ken@example.jp": "confirmed",
        "old@example.com": "confirmed",
        "gone@example.com": "unsubscribed",
    }
    ann = subscriber(session, "ann@example.com")
    event = session.query(ConsentEvent).filter_by(subscriber_id=ann.id).one()
    assert (event.action, event.source) == ("imported", "import:members.csv")
    assert ann.source == "import"


def test_cli_import_without_email_column_or_not_utf8_imports_nothing(runner, session, tmp_path):
    no_column = tmp_path / "a.csv"
    no_column.write_text("name,mail\nA,a@example.com\n", encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(no_column)])
    assert result.exit_code == 1 and "column named 'email'" in result.output
    latin = tmp_path / "b.csv"
    latin.write_bytes("email\nj\xf6rg@example.com\n".encode("latin-1"))
    result = runner.invoke(args=["subscribers", "import", str(latin)])
    assert result.exit_code == 1 and "not UTF-8" in result.output
    assert session.query(Subscriber).count() == 0


def test_import_names_the_line_of_a_row_csv_cannot_read(session):
    huge = "x" * 200_000 + "@example.com"  # over the csv module's field size limit
    lines = ["email\n", f"{huge}\n", "after@example.com\n", "ann@example.com\n"]
    report = service.import_csv(session, lines, confirmed=True, source="import")
    assert [line for line, _message in report.invalid] == [2]
    assert "field larger than field limit" in report.invalid[0][1]
    assert report.added == 2


def test_import_without_confirmed_sends_double_opt_in_mails(session):
    report = service.import_csv(
        session, ["email\n", "a@example.com\n", "b@example.com\n"], confirmed=False, source="import"
    )
    assert (report.added, report.invalid) == (2, [])
    assert sorted(m.recipient for m in confirmation_mails(session)) == [
        "a@example.com",
        "b@example.com",
    ]


def test_mark_bounced_records_the_reply_and_stops_mail(session):
    sub = service.add_subscriber(session, "b@example.com", confirmed=True, source="cli")
    assert service.mark_bounced(session, sub, reply="550 5.1.1 no such user") is True
    session.commit()
    assert subscriber(session, "b@example.com").status == "bounced"
    event = session.query(ConsentEvent).filter_by(action="bounced").one()
    assert event.detail == "550 5.1.1 no such user"
    assert service.mark_bounced(session, sub, reply="550 again") is False
    left = service.add_subscriber(session, "l@example.com", confirmed=True, source="cli")
    service.unsubscribe_subscriber(session, left)
    assert service.mark_bounced(session, left, reply="550") is False
    assert subscriber(session, "l@example.com").status == "unsubscribed"


def test_purge_stale_pending_deletes_only_old_unconfirmed_signups(session):
    clock.freeze(T0 - timedelta(days=31))
    service.add_subscriber(session, "stale@example.com", confirmed=False, source="cli")
    service.add_subscriber(session, "kept@example.com", confirmed=True, source="cli")
    clock.freeze(T0 - timedelta(days=29))
    service.add_subscriber(session, "recent@example.com", confirmed=False, source="cli")
    clock.freeze(T0)
    assert service.purge_stale_pending(session, 30) == 1
    session.expire_all()
    assert sorted(s.email for s in session.query(Subscriber)) == [
        "kept@example.com",
        "recent@example.com",
    ]
    assert {m.recipient for m in session.query(TransactionalMail)} == {"recent@example.com"}
    assert session.query(ConsentEvent).count() == 2
    assert service.purge_stale_pending(session, 30) == 0
