"""Preflight: the checks an issue passes before it is sent, SpamAssassin included."""

import shutil
from datetime import UTC, datetime
from time import mktime

import feedparser
import nh3
import pytest

from mailer.digest import build
from mailer.digest.preflight import (
    HTML_ERROR_BYTES,
    HTML_WARN_BYTES,
    Finding,
    check_issue,
    spam_findings,
)
from mailer.digest.render import RECIPIENT_MARKER, UNSUBSCRIBE_URL_MARKER
from mailer.digest.spamcheck import SpamReport, SpamRule, parse_report, spam_score
from tests.conftest import missing
from tests.support.digest import copy_issue

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def codes(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(finding.level, finding.code) for finding in findings}


@pytest.fixture
def issue(session, make_item):
    make_item(title="Tokyo story", link="https://example.com/news/tokyo?a=1&b=2")
    make_item("openings", title="Python developer", company="Acme KK")
    session.commit()
    return build.build_issue(session, period="2026-W49")


def test_a_good_issue_has_no_findings(app, issue):
    assert check_issue(issue, app.config, spamassassin=False) == []


def test_html_size_warns_over_90_kb_and_errors_over_100_kb(app, issue):
    pad = len(issue.html.encode())
    warn = copy_issue(issue, html=issue.html + "<!--" + "x" * (HTML_WARN_BYTES - pad) + "-->")
    error = copy_issue(issue, html=issue.html + "<!--" + "x" * (HTML_ERROR_BYTES - pad) + "-->")

    warned = check_issue(warn, app.config, spamassassin=False)
    errored = check_issue(error, app.config, spamassassin=False)

    assert codes(warned) == {("warning", "html-size")}
    assert codes(errored) == {("error", "html-size")}
    assert "Gmail clips" in errored[0].message


def test_links_must_be_absolute_http_and_images_need_alt(app, issue):
    extra = (
        '<a href="/archive/1">relative</a><a href="javascript:alert(1)">js</a>'
        '<a href=" JaVa&#10;Script:alert(2)">obfuscated</a><img src="data:image/png;base64,AA">'
        '<a href="mailto:editor@example.com">mail us</a>'
        '<img src="https://example.com/a.png" alt="">'
    )
    bad = copy_issue(issue, html=issue.html.replace("</body>", extra + "</body>"))

    findings = check_issue(bad, app.config, spamassassin=False)

    messages = [f.message for f in findings]
    assert ("error", "relative-link") in codes(findings)
    assert sum(f.code == "unsafe-uri" for f in findings) == 3  # javascript: twice, data: once
    assert ("warning", "image-alt") in codes(findings)
    assert any("not an absolute URL: /archive/1" in message for message in messages)
    assert not any("mailto" in message for message in messages)
    assert not any(UNSUBSCRIBE_URL_MARKER in message for message in messages)
    assert findings[0].level == "error"  # errors come first


def test_unrendered_placeholders_are_errors_but_our_markers_are_not(app, issue):
    assert RECIPIENT_MARKER in issue.html and UNSUBSCRIBE_URL_MARKER in issue.text
    for leftover in ("{{ item.title }}", "{% endif %}", "@@FIRST_NAME@@"):
        broken = copy_issue(issue, text=issue.text + leftover)
        findings = check_issue(broken, app.config, spamassassin=False)
        assert codes(findings) == {("error", "placeholder")}, leftover
        assert "text part" in findings[0].message


def test_text_part_must_exist_and_carry_every_item_and_link(app, issue):
    empty = check_issue(copy_issue(issue, text="  \n"), app.config, spamassassin=False)
    assert codes(empty) == {("error", "text-missing")}

    without_item = issue.text.replace("Tokyo story", "Another story")
    lacking = check_issue(copy_issue(issue, text=without_item), app.config, spamassassin=False)
    assert codes(lacking) == {("error", "text-lacks-item")}
    assert "Tokyo story" in lacking[0].message

    without_link = issue.text.replace("https://example.com/news/tokyo?a=1&b=2", "")
    lacking = check_issue(copy_issue(issue, text=without_link), app.config, spamassassin=False)
    assert codes(lacking) == {("error", "text-lacks-link")}


def test_missing_unsubscribe_link_is_an_error(app, issue):
    html = issue.html.replace(UNSUBSCRIBE_URL_MARKER, "https://news.example.com/")
    findings = check_issue(copy_issue(issue, html=html), app.config, spamassassin=False)
    assert codes(findings) == {("error", "no-unsubscribe")}


def test_empty_section_warns_and_empty_issue_errors(app, session, make_item):
    make_item(title="News only")
    session.commit()
    news_only = build.build_issue(session, period="2026-W49")
    empty = build.render_preview(session, period="2026-W50")  # never stored: no issue is empty

    assert codes(check_issue(news_only, app.config, spamassassin=False)) == {
        ("warning", "empty-section")
    }
    assert codes(check_issue(empty, app.config, spamassassin=False)) == {("error", "empty-issue")}


def test_preview_can_be_checked_like_a_built_issue(app, session, make_item):
    make_item(title="Preview item")
    session.commit()
    preview = build.render_preview(session)
    assert codes(check_issue(preview, app.config, spamassassin=False)) == {
        ("warning", "empty-section")
    }


@pytest.mark.nodb
def test_spam_score_levels():
    def report(score):
        return SpamReport(score, 5.0, (SpamRule("HTML_MESSAGE", 0.0, "BODY: HTML"),))

    assert spam_findings(report(1.9)) == []
    assert codes(spam_findings(report(2.0))) == {("warning", "spam-score")}
    assert codes(spam_findings(report(5.0))) == {("error", "spam-score")}
    assert "HTML_MESSAGE 0" in spam_findings(report(5.0))[0].message


# --- SpamAssassin, for real -----------------------------------------------------------------


def spamassassin_or_skip():
    if shutil.which("spamassassin") is None:
        missing("spamassassin is not installed (Debian package 'spamassassin')")


def add_feed_items(make_item, path, section, limit, **extra):
    """Insert the first ``limit`` entries of a real feed file as items (content as given)."""
    parsed = feedparser.parse(str(path))
    assert parsed.entries, f"{path.name} yielded no entries"
    for entry in parsed.entries[:limit]:
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        published = datetime.fromtimestamp(mktime(when), UTC) if when else None
        make_item(
            section, title=entry.title, link=entry.link,
            summary_html=nh3.clean(entry.get("summary", "")),
            source_name=parsed.feed.get("title"),
            **({"published_at": published} if published else {}), **extra,
        )  # fmt: skip


def test_realistic_digest_scores_below_2_with_spamassassin(app, session, make_item, feeds_dir):
    spamassassin_or_skip()
    add_feed_items(make_item, feeds_dir / "wp-rss2-techcrunch-wordpresscom.xml", "news", 6)
    add_feed_items(make_item, feeds_dir / "ja-rss1.0-hatena-diary.xml", "news", 2)
    add_feed_items(make_item, feeds_dir / "ja-rss1.0-tdiary-eucjp.rdf", "news", 2)
    add_feed_items(make_item, feeds_dir / "rss1.0-rdf-craigslist.xml", "openings", 10,
                   location="Tokyo", job_type="Full-time")  # fmt: skip
    session.commit()
    issue = build.build_issue(session, period="2026-W49")
    assert len(issue.items) == 20

    report = spam_score(issue, app.config)
    print(f"\nSpamAssassin score of a realistic digest: {report.describe()}")

    assert report.score < 2.0, f"SpamAssassin score {report.describe()}"
    assert report.required == 5.0
    findings = check_issue(issue, app.config)
    assert [f for f in findings if f.level == "error"] == [], findings


def test_spamassassin_errors_on_a_spam_signature(app, session, make_item):
    spamassassin_or_skip()
    make_item(title="Test of the spam filter", summary_html=f"<p>{GTUBE}</p>")
    session.commit()
    issue = build.build_issue(session, period="2026-W49")

    findings = [f for f in check_issue(issue, app.config) if f.code == "spam-score"]

    assert [f.level for f in findings] == ["error"]
    assert "GTUBE" in findings[0].message


@pytest.mark.nodb
def test_parse_report_reads_score_and_rules():
    output = (
        b"X-Spam-Status: No, score=1.3 required=5.0 tests=HTML_MESSAGE,\r\n"
        b"\tMIME_HTML_ONLY autolearn=disabled version=4.0.1\r\nSubject: x\r\n\r\nbody\r\n"
        b"Content analysis details:   (1.3 points, 5.0 required)\n\n"
        b" pts rule name              description\n"
        b"---- ---------------------- ------------------------------------------\n"
        b" 0.0 HTML_MESSAGE           BODY: HTML included in message\n"
        b" 1.3 MIME_HTML_ONLY         BODY: Message only has text/html MIME parts\n"
    )
    report = parse_report(output)
    assert report.score == 1.3 and report.required == 5.0
    assert report.rules == (
        SpamRule("HTML_MESSAGE", 0.0, "BODY: HTML included in message"),
        SpamRule("MIME_HTML_ONLY", 1.3, "BODY: Message only has text/html MIME parts"),
    )
    assert report.describe() == "1.3 (HTML_MESSAGE 0, MIME_HTML_ONLY 1.3)"
