"""Feeds: list with last fetch, item count and last error; add (http/https only), change the
section, remove, refresh now. The work is the content room's ``feeds`` service."""

from flask import flash, redirect, render_template, url_for

from ..content import feeds as feed_service
from ..content.errors import FeedError
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
    flash(f"Feed added: {feed.url}. Use “Refresh now” to fetch it at once.", "info")
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
            flash(f"Feed {feed.url} now fills {feed.section}; {moved} waiting items moved.", "info")
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
    url = feed.url
    deleted = feed_service.remove_feed(db.session, feed)
    db.session.commit()
    flash(f"Feed removed: {url} ({deleted} items in no issue yet deleted with it).", "info")
    return redirect(url_for("admin.feed_list"))


@bp.post("/feeds/<int:feed_id>/refresh")
def feed_refresh(feed_id: int):
    """Fetch a feed now and report new items or the error."""
    feed = _get_feed(feed_id)
    if feed is None:
        return _not_found(feed_id)
    result = feed_service.refresh_feed(db.session, feed)
    db.session.commit()
    if result.error:
        flash(f"Refresh of {feed.url} failed: {result.error}", "error")
    else:
        flash(f"Refreshed {feed.url}: {result.new_items} new items.", "info")
    return redirect(url_for("admin.feed_list"))
