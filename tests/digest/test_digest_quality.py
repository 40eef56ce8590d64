"""How the digest reads: lists in the text part, the public archive's footer, item links."""

import re

import pytest

from mailer import clock
from mailer.digest import build
from mailer.digest.plaintext import (
    TextBlock,
    cut,
    cut_blocks,
    display_width,
    html_to_blocks,
    html_to_text,
)
from mailer.digest.render import (
    RECIPIENT_MARKER,
    SUMMARY_COLUMNS,
    TEXT_WIDTH,
    UNSUBSCRIBE_URL_MARKER,
)
from mailer.models import IssueStatus

PROGRAMME = (
    "<p>The programme:</p>"
    "<ul><li>09:00 Talk</li><li>21:00 Training<ul><li>bring shoes</li><li>and water</li></ul>"
    "</li></ul>"
    "<p>Doors open<br>at 08:30.</p>"
    "<ol><li>Register</li><li><p>Enjoy</p></li></ol>"
)
PROGRAMME_LINES = [
    "The programme:",
    "- 09:00 Talk",
    "- 21:00 Training",
    "  - bring shoes",
    "  - and water",
    "Doors open",
    "at 08:30.",
    "1. Register",
    "2. Enjoy",
]


def lines_of(blocks: list[TextBlock], width: int = TEXT_WIDTH) -> list[str]:
    return [line for block in blocks for line in block.lines(width)]


# --- lists and paragraphs in the text part --------------------------------------------------


@pytest.mark.nodb
def test_blocks_keep_paragraphs_breaks_and_nested_lists_on_their_own_lines():
    assert lines_of(html_to_blocks(PROGRAMME)) == PROGRAMME_LINES
    # The HTML part's one-line text is unchanged: the same words, no markers.
    assert html_to_text(PROGRAMME) == (
        "The programme: 09:00 Talk 21:00 Training bring shoes and water Doors open at 08:30. "
        "Register Enjoy"
    )


@pytest.mark.nodb
def test_a_long_list_item_wraps_under_its_own_text():
    item = "Shinkansen timetable changes for the Tokaido line and the airport rail link"
    lines = lines_of(
        html_to_blocks(f"<ol><li>{item}</li></ol><ul><li>x<br>after break</li></ul>"), 40
    )
    assert lines == [
        "1. Shinkansen timetable changes for the",
        "   Tokaido line and the airport rail",
        "   link",
        "- x",
        "  after break",
    ]


@pytest.mark.nodb
def test_deep_nesting_stops_indenting_and_stray_items_are_still_items():
    deep = "<ul><li>a" * 12 + "</li></ul>" * 12
    lines = lines_of(html_to_blocks(deep))
    assert lines[:3] == ["- a", "  - a", "    - a"]
    assert max(len(line) - len(line.lstrip()) for line in lines) <= 10
    assert lines_of(html_to_blocks("<li>one</li><li>two</li>")) == ["- one", "- two"]
    assert lines_of(html_to_blocks("<ol><li>one<li>two</ol>")) == ["1. one", "2. two"]  # unclosed


@pytest.mark.nodb
def test_cut_blocks_cuts_where_the_html_part_is_cut():
    long_list = (
        "<ul>" + "".join(f"<li>Point number {n} of the plan</li>" for n in range(40)) + "</ul>"
    )
    for fragment in (
        PROGRAMME,
        long_list,
        "<p>The plan:</p><ul><li>" + "word " * 80 + "</li></ul>",
    ):
        blocks = cut_blocks(html_to_blocks(fragment), 60)
        assert " ".join(block.text for block in blocks) == cut(html_to_text(fragment), 60)
    blocks = cut_blocks(html_to_blocks(long_list), 60)
    assert lines_of(blocks) == [
        "- Point number 0 of the plan",
        "- Point number 1 of the plan",
        "- Point…",
    ]
    assert cut_blocks(html_to_blocks(PROGRAMME), SUMMARY_COLUMNS) == html_to_blocks(PROGRAMME)


def test_digest_text_part_lists_items_line_by_line_and_html_part_keeps_the_lists(
    session, make_item
):
    make_item(title="Conference day in Osaka", summary_html=PROGRAMME)
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    expected = "\n".join(
        ["Conference day in Osaka", "https://example.com/news/1", "example.com · 1 Dec 2026"]
        + PROGRAMME_LINES
    )
    assert expected + "\n" in issue.text
    assert all(display_width(line) <= TEXT_WIDTH for line in issue.text.splitlines())
    # The HTML part shows the summary's lists as lists (nested items join their list).
    tags = r'(?: class="[^"]*")?(?: style="[^"]*")?'
    assert re.search(
        rf"<p{tags}>The programme:</p>\s*<ul{tags}><li{tags}>09:00 Talk</li><li{tags}>21:00 "
        rf"Training</li><li{tags}>bring shoes</li><li{tags}>and water</li></ul>\s*"
        rf"<p{tags}>Doors open</p>\s*<p{tags}>at 08:30.</p>\s*"
        rf"<ol{tags}><li{tags}>Register</li><li{tags}>Enjoy</li></ol>",
        issue.html,
    )


# --- the public archive page ----------------------------------------------------------------


def test_archive_page_invites_to_subscribe_and_the_mail_keeps_its_footer(
    client, session, make_item
):
    make_item(title="Archived story")
    session.commit()
    issue = build.build_issue(session, period="2026-W49")
    issue.status, issue.sent_at = IssueStatus.SENT, clock.now()
    session.commit()

    page = client.get("/archive/1").get_data(as_text=True)
    article = page[page.index("<article") : page.index("</article>")]

    assert "Archived story</a>" in article
    assert "unsubscribe" not in page.lower()
    assert "You receive this because" not in page and "subscribed to" not in page
    assert "1-1 Example-cho" not in article and "View in browser" not in article
    assert re.search(
        r'<td class="footer" style="[^"]*"><p class="archive-subscribe">Like what you read\? '
        r'<a href="/">Subscribe</a> to get Japan Weekly by e-mail '
        r"every week.</p></td>",
        article,
    )
    # The stored mail is untouched: its footer still speaks to the subscriber.
    assert f"You receive this because {RECIPIENT_MARKER} subscribed" in issue.html
    assert f'href="{UNSUBSCRIBE_URL_MARKER}"' in issue.html
    assert "View in browser</a>" in issue.html


# --- one link per item, named by its title --------------------------------------------------


def test_each_item_link_is_named_by_its_title_and_the_text_part_gives_its_url(session, make_item):
    make_item(title="Tokyo story")
    make_item(title="Osaka story")
    make_item("openings", title="Kyoto opening")
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    links = re.findall(r'<a href="(https://example\.com/[^"]+)"[^>]*>([^<]*)</a>', issue.html)
    assert sorted(links) == [
        ("https://example.com/news/1", "Tokyo story"),
        ("https://example.com/news/2", "Osaka story"),
        ("https://example.com/openings/3", "Kyoto opening"),
    ]
    assert "Read more" not in issue.html and "Read more" not in issue.text
    for title, url in (
        ("Tokyo story", "https://example.com/news/1"),
        ("Osaka story", "https://example.com/news/2"),
        ("Kyoto opening", "https://example.com/openings/3"),
    ):
        assert f"\n{title}\n{url}\n" in issue.text
