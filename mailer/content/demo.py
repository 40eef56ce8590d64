"""The demo feed that ships with the project, so that a fresh install's first digest has content.

The feed (``mailer/content/demo/japan-weekly-demo.xml``) holds fictional news items and job
openings written for this project; its openings name their own section with a category.
"""

from pathlib import Path

from sqlalchemy import select, update

from ..models import Feed, Item, Section
from .feeds import add_feed, refresh_feed

DEMO_FEED_PATH = Path(__file__).resolve().parent / "demo" / "japan-weekly-demo.xml"


def load_demo_feed(session) -> Feed | None:
    """Add the bundled demo feed and refresh it, once: only when there are no feeds at all.

    Args:
        session: the SQLAlchemy session (committed here: adding and refreshing the feed).

    Returns:
        The new Feed (its items stored; check ``last_error`` for a problem reading the file),
        or None when some feed already exists (the operator's own, or the demo of an earlier
        start).
    """
    if session.scalar(select(Feed.id).limit(1)) is not None:
        return None
    feed = add_feed(session, str(DEMO_FEED_PATH), Section.NEWS, allow_local=True)
    session.commit()
    refresh_feed(session, feed)
    # The demo is there for a first digest: its dated entries are never a backlog.
    session.execute(update(Item).where(Item.feed_id == feed.id).values(backlog=False))
    session.commit()
    return feed
