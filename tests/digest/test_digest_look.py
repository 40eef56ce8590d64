"""The digest reads like a newsletter: subject, date in words, intro counts, summaries cut at
a sentence, lists kept, the text part wrapped at 78 columns (Japanese between phrases), the
size for 60 items, one name throughout (From's display name too)."""

import re
from datetime import UTC, date, datetime

import pytest

from mailer import create_app
from mailer.delivery.message.headers import from_value
from mailer.digest.look import (
    cut_at_sentence,
    date_in_words,
    intro_line,
    issue_date,
    subject_line,
)
from mailer.digest.plaintext import display_width, wrap
from mailer.digest.render import TEXT_WIDTH, render_issue, sections_view
from mailer.digest.sample import sample_items
from mailer.models import Item

NAME = "Japan Weekly"


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        ("Tokyo rents rise", "Japan Weekly: Tokyo rents rise"),
        (
            "Tokyo rents rise again as the yen weakens and foreign buyers return to wards",
            "Japan Weekly: Tokyo rents rise again as the yen weakens and foreign…",
        ),
        (
            "Supercalifragilisticexpialidocious-and-then-some-more-hyphenated-words-here",
            "Japan Weekly: Supercalifragilisticexpialidocious-and-then-some-more-h…",
        ),
        (
            "長野のスキー場が今週末オープン、多くの観光客が訪れる見込み。"
            "東京からの新幹線も増便される予定で、地元のホテルは満室",
            "Japan Weekly: 長野のスキー場が今週末オープン、多くの観光客が訪れる見込み。"
            "東京からの新幹線も増便される予定で、地元のホテルは…",
        ),
        ("", "Japan Weekly"),
    ],
    ids=["short", "word-cut", "no-space", "japanese", "no-items"],
)
def test_subject_is_name_and_top_story_within_70_characters(headline, expected):
    subject = subject_line(NAME, headline)
    assert subject == expected
    assert len(subject) <= 70


@pytest.mark.nodb
def test_date_in_words_for_the_send_day_of_the_week():
    assert date_in_words(issue_date(2026, 50, "monday")) == "Monday, 7 December 2026"
    assert date_in_words(issue_date(2026, 50, "fri")) == "Friday, 11 December 2026"
    assert date_in_words(date(2027, 1, 1)) == "Friday, 1 January 2027"


@pytest.mark.nodb
def test_intro_line_counts_what_is_inside():
    assert intro_line(6, 12) == "6 stories and 12 job openings this week"
    assert intro_line(1, 1) == "1 story and 1 job opening this week"
    assert intro_line(None, 3) == "3 job openings this week"
    assert intro_line(0, 0) == "Nothing new this week"


@pytest.mark.nodb
def test_summaries_are_cut_at_a_sentence_end():
    text = "The rate rises in October. Small shops feel it most. " + "More words here. " * 20
    assert cut_at_sentence(text, 60) == "The rate rises in October. Small shops feel it most."
    assert cut_at_sentence("今週は雨です。来週は晴れるでしょう。", 20) == "今週は雨です。"
    # No sentence fits: cut at a word, with an ellipsis.
    assert cut_at_sentence("one two three four five six", 14) == "one two three…"


@pytest.mark.nodb
def test_text_wrapping_keeps_japanese_words_and_latin_words_whole():
    japanese = (
        "今週末は長野のスキー場が一斉にオープンし、多くの観光客が訪れる見込みです。"
        "東京からの新幹線も増便されます。"
    )
    for width in range(16, 40):
        lines = wrap(japanese, width)
        assert "".join(lines) == japanese
        assert all(display_width(line) <= width for line in lines)
        # BudouX keeps each word on one line: no break inside these words.
        for word in ("スキー場", "観光客", "新幹線", "見込み"):
            assert any(word in line for line in lines), (width, lines)
        assert not any(line[0] in "、。" for line in lines)
    english = "Economists expect small independent shops in Osaka to feel the change most " * 3
    url = "https://example.com/" + "long-segment/" * 8
    lines = wrap(english + url, TEXT_WIDTH)
    assert TEXT_WIDTH == 78
    assert lines[-1] == url  # a URL keeps its own line, whatever its length
    words = english.split()
    assert " ".join(lines[:-1]).split() == words  # no word split or lost
    assert all(display_width(line) <= 78 for line in lines[:-1])
    assert max(display_width(line) for line in lines[:-1]) > 70  # the width is used


@pytest.fixture
def app():
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def _render(app, items, sections=None):
    with app.app_context():
        view = sections_view(items, app.config["MAILER_TIMEZONE"])
        if sections:
            view = [section for section in view if section.key in sections]
        return render_issue(app.config, number=7, period="2026-W50", sections=view)[0]


@pytest.mark.nodb
def test_the_issue_reads_like_a_newsletter(app):
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    mail = _render(app, sample_items(now))
    assert mail.subject == "Japan Weekly: Tokyo raises its minimum wage to 1,226 yen from October"
    assert "Monday, 7 December 2026" in mail.html and "Week 50" not in mail.html
    assert "3 stories and 2 job openings this week" in mail.html
    assert re.search(r">News <span[^>]*>· 3</span></h2>", mail.html)
    assert re.search(r">Job openings <span[^>]*>· 2</span></h2>", mail.html)
    # Lists in a summary are lists in the HTML part.
    assert re.search(r"<ul[^>]*><li[^>]*>Tokaido line: 12 trains an hour</li>", mail.html)
    assert re.search(r">Kaisoku Logistics KK</strong> · <strong[^>]*>Osaka or remote", mail.html)
    text = mail.text.splitlines()
    assert text[:4] == [
        NAME,
        "Monday, 7 December 2026",
        "",
        "3 stories and 2 job openings this week",
    ]
    assert "NEWS (3)" in text and "JOB OPENINGS (2)" in text
    assert all(display_width(line) <= 78 for line in text if not line.startswith("http"))


@pytest.mark.nodb
def test_an_openings_only_variant_counts_only_openings(app):
    mail = _render(app, sample_items(datetime(2026, 12, 6, tzinfo=UTC)), sections={"openings"})
    assert (
        "2 job openings this week" in mail.html and "stor" not in mail.html.split("<body")[1][:2000]
    )
    assert ">News <" not in mail.html
    assert mail.subject == "Japan Weekly: Senior Python developer (remote within Japan)"


@pytest.mark.nodb
def test_sixty_items_stay_under_100_kb(app):
    now = datetime(2026, 12, 6, tzinfo=UTC)
    summary = "<p>" + "A summary sentence about the week in Japan. " * 6 + "</p>"
    items = {
        section: [
            Item(
                section=section,
                title=f"{section} headline number {n} about Japan",
                link=f"https://example.com/{section}/{n}",
                summary_html=summary,
                company="Acme KK",
                location="Tokyo",
                job_type="Full-time",
                source_name="Example source",
                published_at=now,
            )
            for n in range(30)
        ]  # fmt: skip
        for section in ("news", "openings")
    }
    mail = _render(app, items)
    assert "30 stories and 30 job openings this week" in mail.html
    assert len(mail.html.encode("utf-8")) < 100_000


@pytest.mark.nodb
def test_one_name_is_from_display_name_unless_mailer_from_has_one():
    config = {"MAILER_NAME": NAME, "MAILER_FROM": "newsletter@example.com"}
    assert from_value(config) == "Japan Weekly <newsletter@example.com>"
    config["MAILER_FROM"] = "Desk <desk@example.com>"
    assert from_value(config) == "Desk <desk@example.com>"


@pytest.mark.nodb
def test_openings_show_pay_when_the_feed_gives_it(app):
    from mailer.content.parse import parse_feed

    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Jobs</title>'
        b"<item><title>Interpreter</title><link>https://example.com/j/1</link>"
        b'<category domain="company">Acme KK</category><category>salary: 6M yen</category>'
        b"<description>Work with us.</description></item></channel></rss>"
    )
    (entry,) = parse_feed(feed, url=None, content_type=None).entries
    assert (entry.company, entry.pay) == ("Acme KK", "6M yen")
    now = datetime(2026, 12, 6, tzinfo=UTC)
    opening = Item(section="openings", title=entry.title, link=entry.link, summary_html="",
                   company=entry.company, pay=entry.pay, published_at=now)  # fmt: skip
    mail = _render(app, {"openings": [opening]})
    assert re.search(r">Acme KK</strong> · <strong[^>]*>6M yen</strong>", mail.html)
    assert "Interpreter\nhttps://example.com/j/1\nAcme KK · 6M yen\n" in mail.text
