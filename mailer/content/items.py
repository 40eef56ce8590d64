"""Items written or edited by admins: validation, the shared sanitizing policy, hiding.

Nothing here commits: the caller (an admin view, a CLI command) commits, so that a form that
also changes other rows succeeds or fails as a whole.
"""

import uuid
from datetime import datetime

from .. import clock
from ..models import Item, Section
from .errors import ItemError
from .parse import clean_line
from .sanitize import absolute_http_url, clean_html

EDITABLE_FIELDS = (
    "section",
    "title",
    "link",
    "summary",
    "company",
    "location",
    "job_type",
    "published_at",
)
# Column sizes of Item (characters).
LIMITS = {"title": 1024, "link": 2048, "company": 512, "location": 512, "job_type": 128}
MAX_SUMMARY_CHARS = 20_000


def create_item(
    session,
    *,
    section: str,
    title: str,
    link: str,
    summary: str = "",
    company: str | None = None,
    location: str | None = None,
    job_type: str | None = None,
    published_at: datetime | None = None,
) -> Item:
    """Add an item by hand (flushed, not committed).

    Args:
        section: "news" or "openings".
        title: non-empty text (one line; at most 1024 characters).
        link: an absolute http:// or https:// URL (at most 2048 characters).
        summary: HTML, sanitized with the same nh3 policy as feed summaries
            (:func:`mailer.content.sanitize.clean_html`); relative links are dropped.
        company, location, job_type: optional text for openings (512/512/128 characters).
        published_at: an aware datetime; None means now (:func:`mailer.clock.now`).

    Returns:
        The new Item (``feed_id`` None, ``dedupe_key`` "admin:<random hex>", not hidden).

    Raises:
        ItemError: naming the field, for any value above that is not acceptable.
    """
    now = clock.now()
    values = {
        "section": section,
        "title": title,
        "link": link,
        "summary": summary,
        "company": company,
        "location": location,
        "job_type": job_type,
        "published_at": now if published_at is None else published_at,
    }
    item = Item(
        feed_id=None,
        dedupe_key=f"admin:{uuid.uuid4().hex}",
        first_seen_at=now,
        hidden=False,
        **_validated(values),
    )
    session.add(item)
    session.flush()
    return item


def update_item(session, item: Item, **fields) -> Item:
    """Change some fields of ``item`` (flushed, not committed); others stay as they are.

    Args:
        item: an Item from a feed or written by hand.
        **fields: any of :data:`EDITABLE_FIELDS`, validated as in :func:`create_item`
            (``published_at=None`` is refused: an item always has a date).

    Returns:
        The item. An issue already built keeps the text it was rendered with.

    Raises:
        ItemError: for an unknown field name or an unacceptable value.
    """
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ItemError(f"these item fields cannot be changed: {', '.join(unknown)}")
    for column, value in _validated(fields).items():
        setattr(item, column, value)
    session.flush()
    return item


def set_hidden(session, item: Item, hidden: bool) -> Item:
    """Hide (True) or show again (False) ``item``; a hidden item never enters an issue.

    Flushed, not committed. Returns the item.
    """
    item.hidden = bool(hidden)
    session.flush()
    return item


def include_backlog_item(session, item: Item) -> Item:
    """Let a backlog item (published long before its new feed was added) go out with the next
    issue, as any new item; flushed, not committed. Returns the item."""
    item.backlog = False
    session.flush()
    return item


def get_item(session, item_id: int) -> Item:
    """Return the Item with ``item_id``; raise ItemError when there is none."""
    item = session.get(Item, item_id)
    if item is None:
        raise ItemError(f"there is no item {item_id}")
    return item


def _validated(fields: dict) -> dict:
    """Map field names to checked column values (``summary`` becomes ``summary_html``)."""
    checks = {
        "section": _section,
        "title": _title,
        "link": _link,
        "summary": _summary,
        "published_at": _published_at,
    }
    values = {}
    for name, value in fields.items():
        check = checks.get(name) or _optional_text(name)
        values["summary_html" if name == "summary" else name] = check(value)
    return values


def _section(value) -> str:
    if value not in Section.ALL:
        raise ItemError(f"section must be one of {', '.join(Section.ALL)}, not {value!r}")
    return value


def _title(value) -> str:
    title = clean_line(value if isinstance(value, str) else None, LIMITS["title"] + 1)
    if not title:
        raise ItemError("the title is empty")
    if len(title) > LIMITS["title"]:
        raise ItemError(f"the title is longer than {LIMITS['title']} characters")
    return title


def _link(value) -> str:
    link = absolute_http_url(value) if isinstance(value, str) else None
    if link is None:
        raise ItemError(f"the link must be an absolute http:// or https:// URL, not {value!r}")
    if len(link) > LIMITS["link"]:
        raise ItemError(f"the link is longer than {LIMITS['link']} characters")
    return link


def _summary(value) -> str:
    if value is not None and not isinstance(value, str):
        raise ItemError("the summary must be text")
    if value and len(value) > MAX_SUMMARY_CHARS:
        raise ItemError(f"the summary is longer than {MAX_SUMMARY_CHARS} characters")
    return clean_html(value)


def _published_at(value) -> datetime:
    if not isinstance(value, datetime):
        raise ItemError("the publication date must be a date and time")
    if value.tzinfo is None:
        raise ItemError("the publication date needs a time zone")
    return value


def _optional_text(name: str):
    limit = LIMITS[name]

    def check(value) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ItemError(f"{name.replace('_', ' ')} must be text")
        text = clean_line(value, limit + 1)
        if text and len(text) > limit:
            raise ItemError(f"{name.replace('_', ' ')} is longer than {limit} characters")
        return text

    return check
