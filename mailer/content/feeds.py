"""Feeds: add, change, remove, and refresh them into Items (the content room's service).

A refresh fetches the feed (conditional GET), parses it, stores new entries as Items and
records the outcome on the Feed row: ``last_fetched_at`` always; ``last_success_at``, the
validators (ETag, Last-Modified) and a cleared ``last_error`` on success; a message for a
person in ``last_error`` on failure. Validators are kept only after a successful refresh, so
a broken document is fetched again in full next time instead of being answered with a 304.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import clock
from ..models import Feed, Item, Section
from . import fetch, netguard
from .errors import FeedError, FetchError
from .ingest import IngestReport, store_entries
from .parse import ParsedFeed, parse_feed
from .sanitize import absolute_http_url

logger = logging.getLogger(__name__)
_OTHER_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
MAX_URL_CHARS = 2048


@dataclass
class RefreshResult:
    """The outcome of refreshing one feed.

    ``error`` is None on success (then also stored as ``Feed.last_error``); ``entries`` is the
    number of entries in the document, ``known`` those stored by an earlier refresh, ``skipped``
    maps a reason to a count; ``not_modified`` is True for an HTTP 304; ``warning`` says what
    feedparser disliked in a document whose entries were still read.
    """

    feed_id: int
    new_items: int = 0
    error: str | None = None
    entries: int = 0
    known: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    not_modified: bool = False
    warning: str | None = None


def add_feed(session, url: str, section: str, *, allow_local: bool = False) -> Feed:
    """Add a feed (flushed, not committed: the caller commits).

    Args:
        session: the SQLAlchemy session.
        url: an http:// or https:// URL; or, only with ``allow_local=True``, the path of an
            existing local file (stored as an absolute path; for offline use and tests).
        section: "news" or "openings": the section its items go to.
        allow_local: the CLI passes True; the admin web form must not (a web user must not
            make the server read its own files).

    Returns:
        The new Feed.

    Raises:
        FeedError: for an empty or unusable URL, another scheme, a local path when not
            allowed or not an existing file, an unknown section, or a URL already added.
    """
    _check_section(section)
    location = _feed_location(url, allow_local=allow_local)
    existing = session.scalar(select(Feed).where(Feed.url == location))
    if existing is not None:
        raise FeedError(f"feed {existing.id} already has this URL: {location}")
    feed = Feed(url=location, section=section)
    session.add(feed)
    session.flush()
    return feed


def _check_section(section: str) -> None:
    if section not in Section.ALL:
        raise FeedError(f"section must be one of {', '.join(Section.ALL)}, not {section!r}")


def _feed_location(url: str, *, allow_local: bool) -> str:
    candidate = (url or "").strip()
    if not candidate:
        raise FeedError("the feed URL is empty")
    if fetch.is_web_url(candidate):
        absolute = absolute_http_url(candidate)
        if absolute is None or len(absolute) > MAX_URL_CHARS:
            raise FeedError(f"not a usable http(s) URL: {candidate}")
        _check_public(absolute)
        return absolute
    if _OTHER_SCHEME.match(candidate) or not allow_local:
        raise FeedError(f"only http:// and https:// feed URLs are accepted, not {candidate}")
    path = Path(candidate).expanduser().resolve()
    if not path.is_file():
        raise FeedError(f"no such file: {path}")
    return str(path)


def _check_public(url: str) -> None:
    # Refused here already so that the admin sees why at once; the fetch checks every
    # connection again (the name may resolve elsewhere by then, and redirects).
    config: Mapping = current_app.config if has_app_context() else {}
    if config.get("MAILER_FEED_ALLOW_PRIVATE", False):
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    refused = netguard.refused_host(parts.hostname or "", port)
    if refused is not None:
        raise FeedError(
            f"the feed's host {parts.hostname} is a loopback, private or reserved address "
            f"({refused}); such feeds are refused unless MAILER_FEED_ALLOW_PRIVATE=1"
        )


def get_feed(session, feed_id: int) -> Feed:
    """Return the Feed with ``feed_id``; raise FeedError when there is none."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"there is no feed {feed_id}")
    return feed


def set_feed_section(session, feed: Feed, section: str) -> int:
    """Move ``feed`` to ``section``, with its items that are in no issue yet and that were in
    the feed's old section (items that named their own section keep it). Not committed.

    Returns the number of items moved. Raises FeedError for an unknown section.
    """
    _check_section(section)
    moved = session.execute(
        update(Item)
        .where(Item.feed_id == feed.id, Item.issue_id.is_(None), Item.section == feed.section)
        .values(section=section)
    ).rowcount
    feed.section = section
    session.flush()
    return moved


def remove_feed(session, feed: Feed) -> int:
    """Delete ``feed`` and its items that are in no issue yet (not committed).

    Items already sent in an issue stay, for the archive (their ``feed_id`` becomes NULL).
    Returns the number of items deleted.
    """
    deleted = session.execute(
        delete(Item).where(Item.feed_id == feed.id, Item.issue_id.is_(None))
    ).rowcount
    session.delete(feed)
    session.flush()
    return deleted


def item_counts(session) -> dict[int, int]:
    """Map each feed id to the number of its items (for feed lists), in one query."""
    rows = session.execute(select(Item.feed_id, func.count()).group_by(Item.feed_id))
    return {feed_id: count for feed_id, count in rows if feed_id is not None}


def refresh_all(session) -> list[RefreshResult]:
    """Refresh every feed in id order, committing after each; never raises for one feed.

    A feed that fails gets its error recorded (see :func:`refresh_feed`) and the next one is
    refreshed. Returns one :class:`RefreshResult` per feed.
    """
    results = []
    for feed_id in session.scalars(select(Feed.id).order_by(Feed.id)).all():
        try:
            feed = session.get(Feed, feed_id)
            if feed is not None:  # removed while we were busy with the others
                results.append(refresh_feed(session, feed))
        except Exception as exc:  # noqa: BLE001 - e.g. the database went away: go on
            session.rollback()
            logger.exception("refreshing feed %s failed", feed_id)
            results.append(RefreshResult(feed_id, error=f"refresh failed: {exc}"))
    return results


def request_refresh(session, feed: Feed) -> None:
    """Queue ``feed`` for the worker's next refresh-requests run (flushed, not committed).

    The admin's "Refresh now" uses this instead of fetching in the web request: a slow or
    hostile feed server must not hold a web worker (issue 11).
    """
    feed.refresh_requested_at = clock.now()
    session.flush()


def refresh_requested(session) -> list[RefreshResult]:
    """Refresh the feeds queued by :func:`request_refresh`, in id order; clears each request.

    The request is cleared (and committed) before the fetch, so that a feed that keeps
    failing is not fetched again and again; its error is on the row as after any refresh.
    """
    results = []
    queued = select(Feed.id).where(Feed.refresh_requested_at.is_not(None)).order_by(Feed.id)
    for feed_id in session.scalars(queued).all():
        feed = session.get(Feed, feed_id)
        if feed is None or feed.refresh_requested_at is None:
            continue  # removed, or taken by another worker meanwhile
        feed.refresh_requested_at = None
        session.commit()
        results.append(refresh_feed(session, feed))
    return results


def refresh_feed(session, feed: Feed) -> RefreshResult:
    """Fetch, parse and store one feed, record the outcome on it, and commit.

    Returns a :class:`RefreshResult`; a broken feed gives one with ``error`` set (also stored
    in ``Feed.last_error``) rather than an exception. A duplicate key stored concurrently by
    another worker makes it roll back and try once more.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: only when the database itself fails.
    """
    feed_id = feed.id
    for attempt in (1, 2):
        started = clock.now()
        try:
            result = _refresh(session, feed, started)
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            feed = get_feed(session, feed_id)
            if attempt == 1:
                continue
            message = "could not store the entries: another process stored them meanwhile"
        except SQLAlchemyError:
            raise
        except Exception as exc:  # noqa: BLE001 - odd input must not stop the other feeds
            logger.exception("feed %s: unexpected error", feed_id)
            session.rollback()
            feed = get_feed(session, feed_id)
            message = f"could not read the feed ({type(exc).__name__}: {exc})"
        result = _failed(feed, message, started)
        session.commit()
        return result
    raise AssertionError("unreachable")  # the second attempt always returns


def _refresh(session, feed: Feed, started: datetime) -> RefreshResult:
    try:
        fetched = fetch.fetch(
            feed.url, etag=feed.etag, last_modified=feed.last_modified, **_fetch_options()
        )
    except FetchError as exc:
        return _failed(feed, str(exc), started)
    if fetched.not_modified:
        _succeeded(feed, started)
        return RefreshResult(feed.id, not_modified=True)
    parsed = parse_feed(fetched.body, url=fetched.url, content_type=fetched.content_type)
    error = parsed.document_error()
    if error:
        return _failed(feed, error, started)
    report = store_entries(session, feed, parsed, now=started, backlog_before=_backlog_before(feed))
    if parsed.entry_count and not report.usable:
        return _failed(feed, _nothing_usable(parsed, report), started)
    feed.title = parsed.title or feed.title
    feed.site_url = _clip(parsed.site_url, MAX_URL_CHARS) or feed.site_url
    feed.etag, feed.last_modified = _clip(fetched.etag, 512), _clip(fetched.last_modified, 128)
    _succeeded(feed, started)
    return _result(feed.id, parsed, report)


def _backlog_before(feed: Feed) -> datetime | None:
    # Only a feed's first successful fetch brings its history; later entries are news.
    if feed.last_success_at is not None:
        return None
    config: Mapping = current_app.config if has_app_context() else {}
    days = int(config.get("MAILER_FEED_BACKLOG_DAYS", 14))
    return feed.created_at - timedelta(days=days)


def _fetch_options() -> dict:
    config: Mapping = current_app.config if has_app_context() else {}
    base_url = config.get("MAILER_BASE_URL", "http://127.0.0.1:5000")
    return {
        "timeout": float(config.get("MAILER_FEED_TIMEOUT", 20.0)),
        "max_bytes": int(config.get("MAILER_FEED_MAX_BYTES", 10 * 1024 * 1024)),
        "user_agent": fetch.USER_AGENT.format(base_url=base_url),
        "allow_private": bool(config.get("MAILER_FEED_ALLOW_PRIVATE", False)),
    }


def _succeeded(feed: Feed, when: datetime) -> None:
    feed.last_fetched_at = when
    feed.last_success_at = when
    feed.last_error = None


def _failed(feed: Feed, message: str, when: datetime) -> RefreshResult:
    logger.warning("feed %s (%s): %s", feed.id, fetch.masked_url(feed.url), message)
    feed.last_fetched_at = when
    feed.last_error = message
    return RefreshResult(feed.id, error=message)


def _nothing_usable(parsed: ParsedFeed, report: IngestReport) -> str:
    reasons = ", ".join(f"{count} {reason}" for reason, count in report.skipped.items())
    message = f"none of the {parsed.entry_count} entries is usable: {reasons}"
    if report.first_skipped_title:
        message += f' (the first is "{report.first_skipped_title[:80]}")'
    if parsed.problem:
        message += f"; feedparser also reported: {parsed.problem}"
    return message


def _result(feed_id: int, parsed: ParsedFeed, report: IngestReport) -> RefreshResult:
    return RefreshResult(
        feed_id,
        new_items=report.new_items,
        entries=parsed.entry_count,
        known=report.known,
        skipped=dict(report.skipped),
        warning=parsed.problem,
    )


def _clip(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else None
