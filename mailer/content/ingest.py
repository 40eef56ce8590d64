"""Store a feed's parsed entries as Items: dedupe keys, honest dates, link and title fallbacks.

Rules (issue 2, "Feeds"):

- **Dedupe key**: the entry's guid when no other entry of this fetch has the same guid (a
  guid longer than 255 characters is stored as ``guid-sha256:<hex>``); otherwise
  ``sha256:<hex of link + "\\n" + title>``. ``(feed_id, dedupe_key)`` is unique in the
  database; the keys already stored are read in ONE query per refresh and skipped.
- **Dates**: an entry without a usable date (none, before :data:`DATE_FLOOR`, or after now)
  gets the time it was first seen as ``published_at``.
- **Link**: ``Item.link`` is always an absolute http(s) URI. An entry whose own link is not
  one (missing, or e.g. ``記事1のURL`` in a file with no base URL) falls back to the feed's
  site link; when the feed has none either, the entry is skipped and counted under
  :data:`SKIP_NO_LINK`.
- **Title**: an entry without a title is titled by the start of its summary, else by its link;
  an entry with no title, summary or link is skipped (:data:`SKIP_EMPTY`).
- **Backlog** (issue 12): on a feed's first successful fetch, entries published before
  ``backlog_before`` (the time the feed was added minus MAILER_FEED_BACKLOG_DAYS) are stored
  with ``backlog=True``: kept out of the digest, so that adding a feed never mails its whole
  history; an admin may include one by hand (``items.include_backlog_item``).
- **Section**: the feed's section, unless the entry names one with a category
  ``<category domain="section">openings</category>``. Company, location and job type
  (see :func:`mailer.content.parse.parse_feed`) are stored for openings only.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from ..models import Feed, Item, Section
from .parse import ParsedEntry, ParsedFeed, clean_line
from .sanitize import excerpt, plain_text

# RSS dates before this are broken defaults (e.g. the Unix epoch), not real publication dates.
DATE_FLOOR = datetime(1990, 1, 1, tzinfo=UTC)
MAX_KEY_CHARS = 255
MAX_LINK_CHARS = 2048  # Item.link's column size
TITLE_FROM_SUMMARY_CHARS = 120
SKIP_NO_LINK = "without an absolute http(s) link (and no site link to fall back to)"
SKIP_EMPTY = "empty (no title, summary or link)"
SKIP_REPEATED = "repeated within this fetch"


@dataclass
class IngestReport:
    """What happened to a fetch's entries: stored, already known, or skipped with a reason."""

    new_items: int = 0
    known: int = 0
    backlog: int = 0  # of the new items, how many were stored as backlog
    skipped: Counter = field(default_factory=Counter)
    first_skipped_title: str | None = None

    @property
    def usable(self) -> int:
        """Entries that are items (new now or stored before)."""
        return self.new_items + self.known


@dataclass(frozen=True)
class _Candidate:
    entry: ParsedEntry
    title: str
    link: str


def store_entries(
    session,
    feed: Feed,
    parsed: ParsedFeed,
    *,
    now: datetime,
    backlog_before: datetime | None = None,
) -> IngestReport:
    """Add the new entries of ``parsed`` to ``feed`` as Items (flushed, not committed).

    Args:
        session: the SQLAlchemy session.
        feed: the Feed the document came from (its id and section are used).
        parsed: the parsed document.
        now: the refresh time (aware UTC): ``first_seen_at`` of new items.
        backlog_before: entries published before this (aware UTC) are stored as backlog;
            None: none is (only a feed's first fetch passes a time).

    Returns:
        An :class:`IngestReport`.

    Raises:
        sqlalchemy.exc.IntegrityError: when another process stored one of the same keys
            between our query and the flush (the caller retries).
    """
    report = IngestReport()
    candidates = []
    for entry in parsed.entries:
        candidate = _candidate(entry, parsed.site_url)
        if isinstance(candidate, str):
            report.skipped[candidate] += 1
            report.first_skipped_title = report.first_skipped_title or entry.title or None
        else:
            candidates.append(candidate)
    keys = dedupe_keys(candidates)
    existing = _existing_keys(session, feed.id, keys)
    seen_now: set[str] = set()
    for candidate, key in zip(candidates, keys, strict=True):
        if key in seen_now:
            report.skipped[SKIP_REPEATED] += 1
        elif key in existing:
            report.known += 1
        else:
            item = _item(feed, parsed, candidate, key, now)
            item.backlog = backlog_before is not None and item.published_at < backlog_before
            session.add(item)
            report.new_items += 1
            report.backlog += item.backlog
        seen_now.add(key)
    session.flush()
    return report


def _candidate(entry: ParsedEntry, site_url: str | None) -> _Candidate | str:
    """The entry with its final link and title, or the reason to skip it."""
    summary_text = plain_text(entry.summary_html)
    if not (entry.title or summary_text or entry.link):
        return SKIP_EMPTY
    link = _fits(entry.link) or _fits(site_url)
    if not link:
        return SKIP_NO_LINK
    title = entry.title or excerpt(summary_text, TITLE_FROM_SUMMARY_CHARS) or link
    return _Candidate(entry=entry, title=clean_line(title, 1024) or link[:1024], link=link)


def _fits(link: str | None) -> str | None:
    return link if link and len(link) <= MAX_LINK_CHARS else None


def dedupe_keys(candidates: list[_Candidate]) -> list[str]:
    """The dedupe key of each candidate, in order (rules in the module docstring)."""
    guid_counts = Counter(c.entry.guid for c in candidates if c.entry.guid)
    keys = []
    for candidate in candidates:
        guid = candidate.entry.guid
        if guid and guid_counts[guid] == 1:
            keys.append(guid if len(guid) <= MAX_KEY_CHARS else f"guid-sha256:{_sha256(guid)}")
        else:
            keys.append(f"sha256:{_sha256(candidate.link + chr(10) + candidate.title)}")
    return keys


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _existing_keys(session, feed_id: int, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    query = select(Item.dedupe_key).where(Item.feed_id == feed_id, Item.dedupe_key.in_(set(keys)))
    return set(session.scalars(query))


def honest_date(claimed: datetime | None, now: datetime) -> datetime:
    """``claimed`` when it is plausible (from :data:`DATE_FLOOR` up to ``now``), else ``now``."""
    if claimed is None or claimed < DATE_FLOOR or claimed > now:
        return now
    return claimed


def _item(feed: Feed, parsed: ParsedFeed, candidate: _Candidate, key: str, now) -> Item:
    entry = candidate.entry
    section = entry.section if entry.section in Section.ALL else feed.section
    opening = section == Section.OPENINGS
    return Item(
        feed_id=feed.id,
        dedupe_key=key,
        section=section,
        title=candidate.title,
        link=candidate.link,
        summary_html=entry.summary_html,
        source_name=parsed.title or feed.title,
        author=entry.author,
        company=entry.company if opening else None,
        location=entry.location if opening else None,
        job_type=entry.job_type if opening else None,
        pay=entry.pay if opening else None,
        published_at=honest_date(entry.published_at, now),
        first_seen_at=now,
        hidden=False,
    )
