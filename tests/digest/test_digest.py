"""The digest room: periods, building an issue once per week, the CLI, the public archive."""

import html
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select, update

from mailer import clock
from mailer.digest import build
from mailer.digest.periods import parse_period, period_for, period_label
from mailer.extensions import db
from mailer.models import Issue, IssueStatus, Item

SUNDAY_NIGHT_UTC = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # Monday 08:30 in Tokyo


def count_issues(session) -> int:
    return session.scalar(select(func.count()).select_from(Issue))


def issue_titles(issue: Issue) -> set[str]:
    return {item.title for item in issue.items}


def count_calls(monkeypatch, module, name) -> list:
    """Wrap ``module.name`` so that each call is recorded; return the record."""
    calls = []
    real = getattr(module, name)

    def wrapper(session, *args, **kwargs):
        result = real(session, *args, **kwargs)
        calls.append((session(), result))  # the scoped session's current Session
        return result

    monkeypatch.setattr(module, name, wrapper)
    return calls


# --- periods --------------------------------------------------------------------------------


@pytest.mark.nodb
def test_period_is_the_iso_week_in_the_given_zone_at_a_week_boundary():
    assert period_for(SUNDAY_NIGHT_UTC, "Asia/Tokyo") == "2026-W50"
    assert period_for(SUNDAY_NIGHT_UTC, "UTC") == "2026-W49"
    assert period_for(datetime(2027, 1, 1, 12, tzinfo=UTC), "Asia/Tokyo") == "2026-W53"


@pytest.mark.nodb
def test_parse_period_accepts_iso_weeks_and_explains_bad_ones():
    assert parse_period("2026-W49") == (2026, 49)
    assert parse_period(" 2026-W01 ") == (2026, 1)
    assert period_label("2026-W05") == "Week 5, 2026"
    with pytest.raises(ValueError, match="must look like 2026-W49"):
        parse_period("2026-49")
    with pytest.raises(ValueError, match="must look like 2026-W49"):
        parse_period("")
    with pytest.raises(ValueError, match="2025 has no ISO week 53"):
        parse_period("2025-W53")
    with pytest.raises(ValueError, match="has no ISO week 0"):
        parse_period("2026-W00")


@pytest.mark.nodb
def test_period_for_refuses_naive_datetimes_and_unknown_zones():
    with pytest.raises(ValueError, match="aware"):
        period_for(datetime(2026, 12, 6), "Asia/Tokyo")
    with pytest.raises(ValueError, match="MAILER_TIMEZONE"):
        period_for(SUNDAY_NIGHT_UTC, "Asia/Nowhere")


# --- build ----------------------------------------------------------------------------------


def test_build_takes_the_current_week_in_tokyo(session, make_item):
    make_item(title="First story")
    session.commit()
    clock.freeze(SUNDAY_NIGHT_UTC)

    issue = build.build_issue(session)

    assert (issue.number, issue.period, issue.status) == (1, "2026-W50", IssueStatus.DRAFT)
    assert issue.subject == "Japan Weekly: First story"
    assert issue_titles(issue) == {"First story"}


def test_build_is_idempotent_per_period(session, make_item):
    make_item(title="Only story")
    session.commit()

    first = build.build_issue(session, period="2026-W49")
    make_item(title="Arrived later")
    session.commit()
    again = build.build_issue(session, period="2026-W49")
    forced = build.build_issue(session, period="2026-W49", force=True)

    assert first.id == again.id == forced.id
    assert count_issues(session) == 1
    assert issue_titles(again) == {"Only story"}
    late = session.scalars(select(Item).where(Item.title == "Arrived later")).one()
    assert late.issue_id is None


def test_explicit_period_builds_the_next_issue_from_new_items_only(session, make_item):
    make_item(title="Week 49 story")
    session.commit()
    first = build.build_issue(session, period="2026-W49")
    make_item(title="Week 50 story")
    session.commit()

    second = build.build_issue(session, period="2026-W50")

    assert (first.number, second.number) == (1, 2)
    assert issue_titles(first) == {"Week 49 story"}
    assert issue_titles(second) == {"Week 50 story"}
    assert "Week 49 story" not in second.html and "Week 49 story" not in second.text


def test_no_new_items_makes_no_issue_even_forced(session):
    # Issue 12: --force once built an empty draft that blocked its week.
    assert build.build_issue(session, period="2026-W49") is None
    assert build.build_issue(session, period="2026-W49", force=True) is None
    assert count_issues(session) == 0
    assert build.shortfall(session, {}, force=True) == "no new items since the last issue"


def test_fewer_items_than_the_minimum_build_only_when_forced(app, session, make_item):
    app.config["MAILER_MIN_ITEMS"] = 3
    make_item(title="One")
    make_item(section="openings", title="Two")
    session.commit()

    assert build.build_issue(session, period="2026-W49") is None
    assert build.shortfall(session, app.config) == (
        "only 2 new item(s), fewer than MAILER_MIN_ITEMS (3)"
    )
    forced = build.build_issue(session, period="2026-W49", force=True)

    assert issue_titles(forced) == {"One", "Two"}
    assert forced.period == "2026-W49"


def test_per_section_cap_newest_first_leftovers_wait_for_the_next_issue(app, session, make_item):
    app.config["MAILER_DIGEST_ITEMS_PER_SECTION"] = 3
    same_time = datetime(2026, 11, 30, tzinfo=UTC)
    old = make_item(title="Published years ago", published_at=datetime(2019, 1, 1, tzinfo=UTC))
    tie_low = make_item(title="Tie, lower id", published_at=same_time)
    tie_high = make_item(title="Tie, higher id", published_at=same_time)
    newest = [make_item(title=f"Recent {n}") for n in range(2)]
    opening = make_item("openings", title="Only opening", company="Acme KK")
    session.commit()

    first = build.build_issue(session, period="2026-W49")
    second = build.build_issue(session, period="2026-W50")
    third = build.build_issue(session, period="2026-W51")

    assert issue_titles(first) == {newest[1].title, newest[0].title, tie_high.title, opening.title}
    # Newest first in both parts: the order of the headlines follows published_at, then id.
    order = [newest[1].title, newest[0].title, tie_high.title]
    assert [first.text.index(title) for title in order] == sorted(
        first.text.index(title) for title in order
    )
    assert issue_titles(second) == {tie_low.title, old.title}
    assert third is None


def test_hidden_items_are_never_included(session, make_item):
    make_item(title="Visible story")
    make_item(title="Hidden story", hidden=True)
    session.commit()

    issue = build.build_issue(session, period="2026-W49")
    later = build.build_issue(session, period="2026-W50")

    assert issue_titles(issue) == {"Visible story"}
    assert "Hidden story" not in issue.html and "Hidden story" not in issue.text
    assert later is None
    hidden = session.scalars(select(Item).where(Item.hidden.is_(True))).one()
    assert hidden.issue_id is None


def test_a_concurrent_build_of_the_same_period_returns_the_winners_issue(
    app, session, make_item, monkeypatch
):
    make_item(title="Contested story")
    session.commit()
    real_pending_items = build.pending_items
    winner = {}

    def other_worker_builds_first(sess, per_section):
        chosen = real_pending_items(sess, per_section)
        if not winner:
            winner["id"] = -1
            with app.app_context():  # another worker: its own session and connection
                winner["id"] = build.build_issue(db.session, period="2026-W49").id
        return chosen

    lookups = count_calls(monkeypatch, build, "find_issue")
    monkeypatch.setattr(build, "pending_items", other_worker_builds_first)
    issue = build.build_issue(session, period="2026-W49")

    ours = [found for real_session, found in lookups if real_session is session()]
    assert len(ours) == 2  # our INSERT failed (IntegrityError), so we looked again
    assert winner["id"] > 0 and issue.id == winner["id"]
    assert count_issues(session) == 1
    assert issue_titles(issue) == {"Contested story"}


def test_items_claimed_by_another_issue_meanwhile_are_not_carried_twice(
    app, session, make_item, monkeypatch
):
    make_item(title="In the earlier issue")
    session.commit()
    earlier = build.build_issue(session, period="2026-W48")
    earlier_id = earlier.id
    make_item(title="Claimed elsewhere")
    session.commit()
    real_pending_items = build.pending_items
    raced = []

    def other_worker_claims_the_items(sess, per_section):
        chosen = real_pending_items(sess, per_section)
        if not raced:
            raced.append(True)
            with app.app_context():
                db.session.execute(update(Item).values(issue_id=earlier_id))
                db.session.commit()
        return chosen

    lookups = count_calls(monkeypatch, build, "find_issue")
    monkeypatch.setattr(build, "pending_items", other_worker_claims_the_items)
    result = build.build_issue(session, period="2026-W49")

    assert raced and result is None
    assert len(lookups) == 2  # the claim UPDATE came up short: rolled back, tried again
    assert build.find_issue(session, "2026-W49") is None
    items = session.scalars(select(Item))
    assert {item.issue_id for item in items} == {earlier_id}


def test_render_preview_is_transient_and_assigns_nothing(session, make_item):
    make_item(title="Preview story")
    make_item("openings", title="Preview opening")
    session.commit()
    clock.freeze(SUNDAY_NIGHT_UTC)

    preview = build.render_preview(session)

    assert inspect(preview).transient
    assert (preview.number, preview.period) == (1, "2026-W50")
    assert "Preview story" in preview.html and "Preview opening" in preview.text
    session.commit()
    assert count_issues(session) == 0
    assert session.scalar(select(func.count()).where(Item.issue_id.is_not(None))) == 0


# --- CLI ------------------------------------------------------------------------------------


def test_cli_build_prints_the_issue_counts_and_preflight(runner, session, make_item):
    make_item(title="CLI story one")
    make_item(title="CLI story two")
    make_item("openings", title="CLI opening", company="Acme KK", location="Tokyo")
    session.commit()

    result = runner.invoke(args=["digest", "build", "--period", "2026-W50"])

    assert result.exit_code == 0, result.output
    assert "Issue #1 for 2026-W50 built (status draft)." in result.output
    assert "Items: 2 news, 1 openings" in result.output
    assert "Preflight" in result.output
    again = runner.invoke(args=["digest", "build", "--period", "2026-W50"])
    assert "Issue #1 for 2026-W50 already existed" in again.output


def test_cli_build_says_when_there_is_nothing_new_and_rejects_bad_periods(runner, session):
    result = runner.invoke(args=["digest", "build", "--period", "2026-W51"])
    assert result.exit_code == 1
    assert "No issue built for 2026-W51: no new items since the last issue" in result.output
    assert count_issues(session) == 0

    bad = runner.invoke(args=["digest", "build", "--period", "next week"])
    assert bad.exit_code != 0
    assert "period must look like 2026-W49" in bad.output


def test_cli_build_force_never_makes_an_empty_issue(runner, session):
    # Issue 12: it made an empty draft with a preflight error, exited 0 and blocked its week.
    result = runner.invoke(args=["digest", "build", "--period", "2026-W51", "--force"])

    assert result.exit_code == 1
    assert "No issue built for 2026-W51: no new items since the last issue." in result.output
    assert count_issues(session) == 0


def test_cli_build_force_overrides_the_minimum(app, runner, session, make_item):
    app.config["MAILER_MIN_ITEMS"] = 2
    make_item(title="Lonely story")
    session.commit()

    plain = runner.invoke(args=["digest", "build", "--period", "2026-W51"])
    assert plain.exit_code == 1
    assert "only 1 new item(s), fewer than MAILER_MIN_ITEMS (2) (--force" in plain.output
    forced = runner.invoke(args=["digest", "build", "--period", "2026-W51", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "Issue #1 for 2026-W51 built" in forced.output
    assert "Items: 1 news, 0 openings" in forced.output


# --- archive --------------------------------------------------------------------------------


@pytest.fixture
def archive_issues(session, make_item):
    """Issues #1 sent, #2 draft, #3 sending; returns their item titles by number."""
    statuses = {1: IssueStatus.SENT, 2: IssueStatus.DRAFT, 3: IssueStatus.SENDING}
    titles = {}
    for number, status in statuses.items():
        title = f"Archive story of issue {number} & co"
        make_item(title=title)
        session.commit()
        issue = build.build_issue(session, period=f"2026-W{40 + number}")
        issue.status = status
        issue.sent_at = clock.now() if status == IssueStatus.SENT else None
        session.commit()
        titles[number] = title
    return titles


def test_archive_lists_sent_and_sending_issues_only(client, archive_issues):
    response = client.get("/archive")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'href="/archive/1"' in page and 'href="/archive/3"' in page
    assert 'href="/archive/2"' not in page
    assert html.escape(archive_issues[1]) in page and html.escape(archive_issues[2]) not in page


def test_archive_page_shows_the_web_version_with_items(client, archive_issues):
    response = client.get("/archive/1")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Archive story of issue 1 &amp; co" in page
    # A public page: an invitation to subscribe instead of the subscriber's footer.
    assert "You receive this because" not in page and "Unsubscribe" not in page
    assert '<p class="archive-subscribe">Like what you read? <a href="/">Subscribe</a>' in page
    assert "@@" not in page


def test_archive_hides_drafts_and_unknown_numbers(client, archive_issues):
    assert client.get("/archive/2").status_code == 404
    assert client.get("/archive/99").status_code == 404
    assert client.get("/archive/3").status_code == 200


def test_archive_without_sent_issues_says_so(client):
    response = client.get("/archive")
    assert response.status_code == 200
    assert "No issue has been sent yet." in response.get_data(as_text=True)


def test_issue_timestamps_are_aware_utc(session, make_item):
    make_item()
    session.commit()
    clock.freeze(SUNDAY_NIGHT_UTC + timedelta(minutes=5))
    issue = build.build_issue(session)
    session.expire_all()
    assert issue.created_at == SUNDAY_NIGHT_UTC + timedelta(minutes=5)
