"""Topics at signup: the form's and JSON's ``sections``, kept on the subscriber and the consent
record, and shown to admins (subscriber page, list filter, CSV export)."""

import csv
import io
import re

import pytest
from sqlalchemy import select

from mailer.models import ConsentEvent, Section, SignupRequest
from mailer.subscriptions.errors import InvalidSections
from mailer.subscriptions.topics import parse_sections
from tests.support.admin import signed_in_client
from tests.support.signup import confirm_path, run_signup_job, subscriber


def _addresses(html: str) -> list[str]:
    return re.findall(r'/admin/subscribers/\d+">([^<]+)</a>', html)


def _consent_sections(session, subscriber_id: int) -> list[str | None]:
    query = select(ConsentEvent.sections).where(ConsentEvent.subscriber_id == subscriber_id)
    return list(session.scalars(query.order_by(ConsentEvent.id)))


def test_the_form_keeps_the_chosen_topic_on_subscriber_and_consent(client, session):
    response = client.post("/subscribe", data={"email": "jobs@example.com", "sections": "openings"})
    assert response.status_code == 200
    assert session.scalar(select(SignupRequest.sections)) == "openings"
    found = subscriber(session, "jobs@example.com")
    assert found.sections == "openings"
    assert _consent_sections(session, found.id) == ["openings"]


def test_repeated_form_fields_and_json_lists(client, session):
    client.post("/subscribe", data={"email": "a@example.com", "sections": ["openings", "news"]})
    client.post("/subscribe", json={"email": "b@example.com", "sections": ["news"]})
    assert subscriber(session, "a@example.com").sections == "news,openings"
    assert subscriber(session, "b@example.com").sections == "news"


def test_absent_sections_means_both(client, session):
    client.post("/subscribe", data={"email": "form@example.com"})
    client.post("/subscribe", json={"email": "json@example.com"})
    for email in ("form@example.com", "json@example.com"):
        found = subscriber(session, email)
        assert found.sections == Section.BOTH
        assert _consent_sections(session, found.id) == [Section.BOTH]


@pytest.mark.parametrize(
    "sections",
    [["weather"], "news", [1], [], ["news", None]],
    ids=["unknown", "str", "int", "empty", "null"],
)
def test_an_invalid_choice_is_a_clear_400_and_stores_nothing(client, session, sections):
    response = client.post("/subscribe", json={"email": "x@example.com", "sections": sections})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_sections"
    assert "news" in body["message"] and "openings" in body["message"]
    assert session.scalar(select(SignupRequest.id)) is None


def test_an_invalid_form_value_shows_the_form_again_with_the_message(client, session):
    response = client.post("/subscribe", data={"email": "x@example.com", "sections": "sports"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Choose &#34;news&#34;, &#34;openings&#34; or both as sections." in page
    assert 'value="x@example.com"' in page
    assert session.scalar(select(SignupRequest.id)) is None


def test_parse_sections_normalises_order_and_case():
    assert parse_sections([" Openings", "news", "news"]) == "news,openings"
    assert parse_sections(None) == "news,openings"
    with pytest.raises(InvalidSections):
        parse_sections(None, absent_means_both=False)


def test_a_leaver_who_signs_up_again_gets_the_new_choice(client, session):
    from mailer import clock
    from mailer.subscriptions.records import change_status

    client.post("/subscribe", data={"email": "back@example.com", "sections": "news"})
    found = subscriber(session, "back@example.com")
    change_status(session, found, "unsubscribe", clock.now())
    session.commit()
    client.post("/subscribe", data={"email": "back@example.com", "sections": "openings"})
    run_signup_job(session)
    found = subscriber(session, "back@example.com")
    # Anyone may type the address: nothing changes until the owner confirms (issue 11) ...
    assert (found.status, found.sections) == ("unsubscribed", "news")
    assert _consent_sections(session, found.id) == ["news", "openings"]
    # ... and the link mailed for that signup brings them back with the new choice.
    assert client.post(confirm_path(session, "back@example.com")).status_code == 200
    found = subscriber(session, "back@example.com")
    assert (found.status, found.sections) == ("confirmed", "openings")


def test_admin_sees_filters_and_exports_topics(app, client, session):
    client.post("/subscribe", data={"email": "n@example.com", "sections": "news"})
    client.post("/subscribe", data={"email": "o@example.com", "sections": "openings"})
    client.post("/subscribe", data={"email": "both@example.com"})
    run_signup_job(session)
    admin = signed_in_client(app, client)
    only = subscriber(session, "o@example.com")

    page = admin.get(f"/admin/subscribers/{only.id}").get_data(as_text=True)
    assert "<dt>Topics</dt><dd>Job openings</dd>" in page

    listed = admin.get("/admin/subscribers?sections=openings").get_data(as_text=True)
    assert _addresses(listed) == ["o@example.com"]
    both = admin.get("/admin/subscribers?sections=news,openings").get_data(as_text=True)
    assert _addresses(both) == ["both@example.com"]

    exported = admin.get("/admin/subscribers/export.csv").get_data(as_text=True)
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(exported))}
    assert {email: row["sections"] for email, row in rows.items()} == {
        "n@example.com": "news",
        "o@example.com": "openings",
        "both@example.com": "news,openings",
    }
    only_news = admin.get("/admin/subscribers/export.csv?sections=news").get_data(as_text=True)
    assert [row["email"] for row in csv.DictReader(io.StringIO(only_news))] == ["n@example.com"]


def test_the_signup_forms_offer_both_topics(app, client):
    page = client.get("/").get_data(as_text=True)
    assert 'name="sections" value="news" checked' in page
    assert 'name="sections" value="openings" checked' in page
    admin = signed_in_client(app, client)
    snippet = admin.get("/admin/settings").get_data(as_text=True)
    assert "name=&#34;sections&#34; value=&#34;openings&#34;" in snippet
