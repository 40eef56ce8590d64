"""Feeds: list with last fetch, item count and last error; add (http/https only), change the
section, remove, refresh now. The work is the content room's ``feeds`` service."""

from flask import current_app, flash, redirect, render_template, url_for

from ..content import feeds as feed_service
from ..content.errors import FeedError
from ..content.fetch import masked_url
from ..extensions import db
from ..models import Feed
from . import listing
from .blueprint import bp
from .forms import FeedForm, FeedSectionForm


def _render(form: FeedForm, status: int = 200):
    rows = listing.feeds_with_counts(db.session)
    forms = {
        feed.id: FeedSectionForm(prefix=f"feed{feed.id}", section=feed.section)
        for feed, _count in rows
    }
    return render_template("admin/feeds.html", rows=rows, form=form, section_forms=forms), status


def _get_feed(feed_id: int) -> Feed | None:
    return db.session.get(Feed, feed_id)


def _not_found(feed_id: int):
    return render_template("admin/not_found.html", what=f"feed {feed_id}"), 404


@bp.get("/feeds")
def feed_list():
    """Every feed with its state, and the form to add one."""
    return _render(FeedForm())


@bp.post("/feeds")
def feed_add():
    """Add a feed (http or https URL only: no local files from the web)."""
    form = FeedForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        feed = feed_service.add_feed(
            db.session, form.url.data.strip(), form.section.data, allow_local=False
        )
        db.session.commit()
    except FeedError as exc:
        db.session.rollback()
        form.url.errors = [*form.url.errors, str(exc)]
        return _render(form, 400)
    flash(f"Feed added: {masked_url(feed.url)}. Use “Refresh now” to fetch it soon.", "info")
    return redirect(url_for("admin.feed_list"))


@bp.post("/feeds/<int:feed_id>/section")
def feed_section(feed_id: int):
    """Move a feed (its future items) to another section."""
    feed = _get_feed(feed_id)
    if feed is None:
        return _not_found(feed_id)
    form = FeedSectionForm(prefix=f"feed{feed.id}")
    if form.validate_on_submit():
        try:
            moved = feed_service.set_feed_section(db.session, feed, form.section.data)
            db.session.commit()
            flash(
                f"Feed {masked_url(feed.url)} now fills {feed.section}; "
                f"{moved} waiting items moved.",
                "info",
            )
        except FeedError as exc:
            db.session.rollback()
            flash(str(exc), "error")
    return redirect(url_for("admin.feed_list"))


@bp.post("/feeds/<int:feed_id>/remove")
def feed_remove(feed_id: int):
    """Remove a feed and its items in no issue yet; items already sent stay for the archive."""
    feed = _get_feed(feed_id)
    if feed is None:
        return _not_found(feed_id)
    url = masked_url(feed.url)
    deleted = feed_service.remove_feed(db.session, feed)
    db.session.commit()
    flash(f"Feed removed: {url} ({deleted} items in no issue yet deleted with it).", "info")
    return redirect(url_for("admin.feed_list"))


@bp.post("/feeds/<int:feed_id>/refresh")
def feed_refresh(feed_id: int):
    """Queue a refresh of the feed for the worker; the feeds page shows the outcome.

    The web request never waits on the feed's server (which may be slow, or trickle on
    purpose): the worker fetches it within MAILER_SENDER_INTERVAL seconds.
    """
    feed = _get_feed(feed_id)
    if feed is None:
        return _not_found(feed_id)
    feed_service.request_refresh(db.session, feed)
    db.session.commit()
    seconds = current_app.config["MAILER_SENDER_INTERVAL"]
    flash(
        f"Refresh of {masked_url(feed.url)} queued: the worker fetches it within about "
        f"{seconds} s; reload this page to see the result.",
        "info",
    )
    return redirect(url_for("admin.feed_list"))
