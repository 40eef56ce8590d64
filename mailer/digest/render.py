"""Render an issue once: items -> reader's view -> templates -> CSS inlined (css-inline).

The stored ``Issue.html`` and ``Issue.text`` are the same for every subscriber except three
markers that the delivery room fills in per recipient (in bytes, after encoding):
:data:`UNSUBSCRIBE_URL_MARKER`, :data:`PREFERENCES_URL_MARKER` and :data:`RECIPIENT_MARKER`.
They are plain ASCII without ``&``, ``<``, ``>`` or quotes, so neither Jinja's autoescaping
nor css-inline changes them. Content cannot create one: every text and link taken from an
item passes through :func:`inert` / :func:`inert_link`, which break any "@@" in it, so the
only markers in a rendered issue are the ones our templates put there.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from html import unescape as html_unescape
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ..models import Item, Section
from ..templating import RenderedMail, render_mail
from .look import (
    SummaryPart,
    cut_at_sentence,
    date_in_words,
    intro_line,
    issue_date,
    subject_line,
    summary_parts,
)
from .periods import parse_period
from .plaintext import ELLIPSIS, TextBlock, clean_line, cut, cut_blocks, html_to_blocks, wrap

UNSUBSCRIBE_URL_MARKER = "@@UNSUBSCRIBE_URL@@"
RECIPIENT_MARKER = "@@RECIPIENT@@"
PREFERENCES_URL_MARKER = "@@PREFERENCES_URL@@"
MARKERS = (UNSUBSCRIBE_URL_MARKER, RECIPIENT_MARKER, PREFERENCES_URL_MARKER)

SUMMARY_COLUMNS = 240  # display columns (a Japanese character is 2) of a summary cut
TEXT_WIDTH = 78  # columns of the text part (RFC 5322 §2.1.1: lines of at most 78)
PREHEADER_COLUMNS = 140
SECTION_TITLES = {Section.NEWS: "News", Section.OPENINGS: "Job openings"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
# The footer cell of templates/email/_layout.html (css-inline adds a style attribute and
# keeps the class); it holds no table of its own, so the first </td> closes it.
_FOOTER_CELL = re.compile(r'(<td\b[^>]*\bclass="footer"[^>]*>).*?(</td>)', re.DOTALL)


@dataclass(frozen=True)
class DigestItem:
    """One item as the reader sees it: plain text everywhere (templates escape the HTML)."""

    title: str
    link: str  # absolute http(s) URL, or "" when the stored link was not one
    date: str
    source: str
    summary: str  # one line (the words of the HTML part's paragraphs and lists)
    details: str  # openings: "company · location · type" (the parts that are known)
    # The same words as ``summary`` with the summary's paragraphs and list items kept apart,
    # for the text part (see plaintext.html_to_blocks).
    summary_blocks: tuple[TextBlock, ...]
    # The opening's facts one by one, for the HTML part: (label, value) of the known ones.
    facts: tuple[tuple[str, str], ...] = ()

    def summary_parts(self) -> list[SummaryPart]:
        """The summary as paragraphs and lists, for the HTML part."""
        return summary_parts(list(self.summary_blocks))

    def title_lines(self) -> list[str]:
        """The title wrapped for the text part."""
        return wrap(self.title, TEXT_WIDTH)

    def summary_lines(self) -> list[str]:
        """The summary wrapped for the text part: one line or more per paragraph, list item
        ("- ", "1. ") or line after a <br>."""
        return [line for block in self.summary_blocks for line in block.lines(TEXT_WIDTH)]

    def details_lines(self) -> list[str]:
        """The opening's details wrapped for the text part."""
        return wrap(self.details, TEXT_WIDTH)


@dataclass(frozen=True)
class DigestSection:
    """A section ("news" or "openings") with its title and its items, newest first."""

    key: str
    title: str
    items: tuple[DigestItem, ...]


def safe_link(url: str | None) -> str:
    """Return ``url`` when it is an absolute http(s) URL, else "" (no javascript:, data: ...)."""
    url = (url or "").strip()
    parts = urlsplit(url)
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def item_view(item: Item, tz: ZoneInfo) -> DigestItem:
    """Return the reader's view of ``item``: text cleaned, summary cut, date in ``tz``."""
    facts = tuple(
        (label, clean_line(value))
        for label, value in (
            ("Company", item.company),
            ("Place", item.location),
            ("Terms", item.job_type),
            ("Pay", item.pay),
        )
        if value and value.strip()
    )
    blocks = html_to_blocks(item.summary_html)
    whole = " ".join(block.text for block in blocks)
    # Cut at the end of a sentence; cut_blocks then keeps the paragraphs and list items of
    # exactly those words (its columns are the kept text's own width).
    short = cut_at_sentence(whole, SUMMARY_COLUMNS)
    if short == whole:
        kept = blocks
    elif short.endswith(ELLIPSIS):
        kept = cut_blocks(blocks, SUMMARY_COLUMNS)
    else:
        kept = _first_characters(blocks, len(short))
    facts = tuple((label, inert(value)) for label, value in facts)
    kept = [replace(block, text=inert(block.text)) for block in kept]
    return DigestItem(
        title=inert(clean_line(html_unescape(item.title or ""))),
        link=inert_link(safe_link(item.link)),
        date=format_date(item.published_at, tz),
        source=inert(cut(_source_name(item), 60)),
        summary=" ".join(block.text for block in kept),
        details=" · ".join(value for _label, value in facts),
        summary_blocks=tuple(kept),
        facts=facts,
    )


# Between two "@": a word joiner (U+2060), which no reader sees and which breaks no word.
_INERT_AT = "@\u2060@"


def inert(text: str) -> str:
    """Return a feed's (or an admin's) text such that it cannot form a per-recipient marker.

    The markers (:data:`MARKERS`) all begin and end with "@@", which this breaks with an
    invisible word joiner (U+2060): a feed that writes ``@@UNSUBSCRIBE_URL@@`` is shown as it
    wrote it and never gets a recipient's unsubscribe link or address filled in (issue 11).
    """
    return text.replace("@@", _INERT_AT) if "@@" in text else text


def inert_link(url: str) -> str:
    """Return ``url`` with every "@" percent-encoded when it holds "@@" (see :func:`inert`).

    ``%40`` names the same path or query; a link whose user part holds "@@" is not one a
    feed has any business sending.
    """
    return url.replace("@", "%40") if "@@" in url else url


def _first_characters(blocks: list[TextBlock], length: int) -> list[TextBlock]:
    # The blocks holding the first ``length`` characters of their texts joined by spaces.
    kept, start = [], 0
    for block in blocks:
        if start >= length:
            break
        text = block.text[: length - start].rstrip()
        kept.append(replace(block, text=text))
        start += len(block.text) + 1
    return [block for block in kept if block.text]


def format_date(moment: datetime, tz: ZoneInfo) -> str:
    """Return ``moment`` as a date in ``tz`` such as ``"5 Dec 2026"`` (no locale involved)."""
    local = moment.astimezone(tz)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def _source_name(item: Item) -> str:
    if item.source_name and item.source_name.strip():
        return clean_line(item.source_name)
    if item.feed is not None and item.feed.title:
        return clean_line(item.feed.title)
    return urlsplit(item.link or "").hostname or ""


def sections_view(items: Mapping[str, Sequence[Item]], tz_name: str) -> list[DigestSection]:
    """Return both sections in their fixed order (News, Openings), each possibly empty."""
    tz = ZoneInfo(tz_name)
    return [
        DigestSection(key, SECTION_TITLES[key], tuple(item_view(i, tz) for i in items.get(key, ())))
        for key in Section.ALL
    ]


def render_issue(
    config: Mapping,
    *,
    number: int,
    period: str,
    sections: Sequence[DigestSection],
    variant: str = Section.BOTH,
) -> tuple[RenderedMail, str]:
    """Render the digest triplet for an issue and inline its CSS (once per issue variant).

    Args:
        config: the app config (MAILER_NAME, MAILER_BASE_URL, MAILER_POSTAL_ADDRESS, ...).
        number: the issue number (for the "view in browser" link /archive/<number>).
        period: the ISO week, e.g. "2026-W49".
        sections: from :func:`sections_view` (a variant passes only its own section).
        variant: the topics this rendering is for (``Section.key`` form); in the templates'
            context as ``variant``.

    Returns:
        (mail, preheader): subject, text and HTML (CSS inlined), and the preheader text.
        Needs an app context (templates).
    """
    base_url = config["MAILER_BASE_URL"].rstrip("/")
    name = config["MAILER_NAME"]
    titles = [item.title for section in sections for item in section.items]
    counts = {section.key: len(section.items) for section in sections}
    intro = intro_line(counts.get(Section.NEWS), counts.get(Section.OPENINGS))
    preheader = cut(intro + ": " + " · ".join(titles[:3]), PREHEADER_COLUMNS) if titles else intro
    year, week = parse_period(period)
    mail = render_mail(
        "digest",
        newsletter=name,
        label=date_in_words(issue_date(year, week, config.get("MAILER_DIGEST_DAY", ""))),
        subject=subject_line(name, titles[0] if titles else ""),
        intro=intro,
        preheader=preheader,
        sections=sections,
        variant=variant,
        base_url=base_url,
        site_host=urlsplit(base_url).netloc,
        archive_url=f"{base_url}/archive/{number}",
        logo_url=safe_link(config.get("MAILER_LOGO_URL")),
        logo_width=int(config.get("MAILER_LOGO_WIDTH", 160)),
        logo_height=int(config.get("MAILER_LOGO_HEIGHT", 40)),
        postal_address=clean_line(config.get("MAILER_POSTAL_ADDRESS", "")),
        unsubscribe_url=UNSUBSCRIBE_URL_MARKER,
        preferences_url=PREFERENCES_URL_MARKER,
        recipient=RECIPIENT_MARKER,
        text_width=TEXT_WIDTH,
        wrap=wrap,
    )
    html = inline_css(mail.html)
    return RenderedMail(subject=mail.subject, text=mail.text, html=html), preheader


def inline_css(html: str) -> str:
    """Move the ``<style>`` rules into style attributes; keep only @media rules in a block.

    Clients that drop ``<style>`` (or the whole head) still get every colour and size; the
    kept block carries the phone layout and the dark-mode colours that cannot be inlined.
    """
    import css_inline  # noqa: PLC0415 - when an issue is rendered, not at every start

    inliner = css_inline.CSSInliner(
        keep_at_rules=True, minify_css=True, load_remote_stylesheets=False
    )
    return inliner.inline(html)


def fill_web_version(text: str, base_url: str) -> str:
    """Replace the per-recipient markers with neutral values (the public web version).

    The unsubscribe link leads to the site's front page ``{base_url}/`` (no one's token is
    public) and the recipient is "you". The archive page drops the footer that holds them
    first (:func:`replace_footer`) and calls this only so that no marker can ever show. (The
    admin's previews fill the markers as a test copy does: ``admin.next_issue.web_version``.)
    """
    base_url = base_url.rstrip("/")
    for marker in (UNSUBSCRIBE_URL_MARKER, PREFERENCES_URL_MARKER):
        text = text.replace(marker, f"{base_url}/")
    return text.replace(RECIPIENT_MARKER, "you")


def preferences_url_of(unsubscribe_url: str) -> str:
    """The preference page of the subscriber whose unsubscribe URL is ``unsubscribe_url``.

    Both pages take the same token (``/unsubscribe/<token>``, ``/preferences/<token>``), so
    the sender fills both markers from the one token it signs per message.
    """
    head, found, token = unsubscribe_url.rpartition("/unsubscribe/")
    return f"{head}/preferences/{token}" if found else unsubscribe_url


def replace_footer(html: str, footer_html: str) -> str:
    """Put ``footer_html`` in place of what the footer cell of a stored issue's HTML holds.

    The mail's footer speaks to one subscriber ("You receive this because ... subscribed",
    the unsubscribe link, the postal address); the public archive is read by anyone, so it
    shows ``footer_html`` (an invitation to subscribe) there instead. Works on issues stored
    by any version of the layout that has the ``<td class="footer">`` cell.

    Args:
        html: ``Issue.html`` as stored (markers not filled yet, or filled).
        footer_html: trusted HTML, e.g. rendered from templates/digest/_subscribe.html.

    Returns:
        ``html`` with the footer cell's content replaced (the cell and its inline style
        kept); ``html`` unchanged when it has no footer cell.
    """
    return _FOOTER_CELL.sub(lambda match: match[1] + footer_html + match[2], html, count=1)


def web_parts(html: str) -> tuple[str, str]:
    """Split a stored issue's HTML into (its kept @media CSS, the inner HTML of its body)."""
    body = _BODY.search(html)
    styles = "\n".join(_STYLE.findall(html))
    return styles, body.group(1) if body else html
