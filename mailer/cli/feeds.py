"""``flask feeds ...`` and ``flask items ...``: thin entry points over ``mailer.content``."""

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..content import feeds as feed_service
from ..content import items as item_service
from ..content.errors import FeedError, ItemError
from ..extensions import db
from ..models import MAX_DATABASE_ID, Feed, Item, Section

# Ids the database can hold: a larger number is refused by click with the range, not by the
# database with a traceback.
ROW_ID = click.IntRange(1, MAX_DATABASE_ID)

feeds_cli = AppGroup("feeds", help="Add, list, refresh and remove RSS/Atom feeds.")
items_cli = AppGroup("items", help="Add, list and hide items (news stories and job openings).")

SECTION = click.Choice(Section.ALL)


@feeds_cli.command("add")
@click.argument("url")
@click.option("--section", type=SECTION, default=Section.NEWS, show_default=True)
@click.option("--refresh", is_flag=True, help="Fetch the feed right away.")
def add_feed_command(url: str, section: str, refresh: bool) -> None:
    """Add the feed at URL (http:// or https://, or a local file path)."""
    try:
        feed = feed_service.add_feed(db.session, url, section, allow_local=True)
    except FeedError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from exc
    db.session.commit()
    click.echo(f"Added feed {feed.id} ({feed.section}): {feed.url}")
    if refresh:
        _echo_result(feed, feed_service.refresh_feed(db.session, feed))
    else:
        click.echo("Fetch it with: flask --app wsgi feeds refresh")


@feeds_cli.command("refresh")
@click.argument("feed_ids", nargs=-1, type=ROW_ID)
@click.option("--fail-on-error", is_flag=True, help="Exit with status 1 if any feed failed.")
def refresh_command(feed_ids: tuple[int, ...], fail_on_error: bool) -> None:
    """Fetch every feed (or only FEED_IDS) and store their new items."""
    if feed_ids:
        results = [feed_service.refresh_feed(db.session, _feed(i)) for i in feed_ids]
    else:
        results = feed_service.refresh_all(db.session)
    for result in results:
        _echo_result(db.session.get(Feed, result.feed_id), result)
    failed = sum(1 for result in results if result.error)
    new = sum(result.new_items for result in results)
    click.echo(f"{len(results)} feeds refreshed: {new} new items, {failed} failed.")
    if failed and fail_on_error:
        click.get_current_context().exit(1)


def _echo_result(feed: Feed | None, result: feed_service.RefreshResult) -> None:
    name = f"feed {result.feed_id} ({feed.title or feed.url})" if feed else f"feed {result.feed_id}"
    if result.error:
        click.echo(f"{name}: ERROR: {result.error}")
        return
    if result.not_modified:
        click.echo(f"{name}: not modified")
        return
    skipped = sum(result.skipped.values())
    click.echo(
        f"{name}: {result.new_items} new, {result.known} already stored, {skipped} skipped"
        f" (of {result.entries} entries)"
    )
    for reason, count in result.skipped.items():
        click.echo(f"  skipped {count} {reason}")
    if result.warning:
        click.echo(f"  warning: {result.warning}")


@feeds_cli.command("list")
def list_feeds_command() -> None:
    """List the feeds with their item counts, last fetch and last error."""
    counts = feed_service.item_counts(db.session)
    feeds = db.session.scalars(select(Feed).order_by(Feed.id)).all()
    if not feeds:
        click.echo("No feeds. Add one with: flask --app wsgi feeds add URL --section news")
    for feed in feeds:
        fetched = (
            feed.last_fetched_at.strftime("%Y-%m-%d %H:%M UTC") if feed.last_fetched_at else "never"
        )
        status = "ERROR" if feed.last_error else "ok"
        click.echo(
            f"{feed.id:>4}  {feed.section:<8}  {counts.get(feed.id, 0):>5} items  "
            f"{fetched:<20}  {status:<5}  {feed.url}"
        )
        if feed.title:
            click.echo(f"      title: {feed.title}")
        if feed.last_error:
            click.echo(f"      error: {feed.last_error}")


@feeds_cli.command("remove")
@click.argument("feed_id", type=ROW_ID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove_feed_command(feed_id: int, yes: bool) -> None:
    """Remove feed FEED_ID and its items that are in no issue yet."""
    feed = _feed(feed_id)
    if not yes:
        click.confirm(f"Remove feed {feed.id} ({feed.url})?", abort=True)
    deleted = feed_service.remove_feed(db.session, feed)
    db.session.commit()
    click.echo(f"Removed feed {feed_id} and {deleted} items that were in no issue yet.")


def _feed(feed_id: int) -> Feed:
    try:
        return feed_service.get_feed(db.session, feed_id)
    except FeedError as exc:
        raise click.ClickException(str(exc)) from exc


@items_cli.command("add")
@click.option("--section", type=SECTION, required=True)
@click.option("--title", required=True)
@click.option("--link", required=True, help="Absolute http:// or https:// URL.")
@click.option("--summary", default="", help="HTML; sanitized.")
@click.option("--company")
@click.option("--location")
@click.option("--job-type")
def add_item_command(**fields) -> None:
    """Add an item by hand."""
    try:
        item = item_service.create_item(db.session, **fields)
    except ItemError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Added item {item.id} ({item.section}): {item.title}")


@items_cli.command("list")
@click.option("--section", type=SECTION)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def list_items_command(section: str | None, limit: int) -> None:
    """List the newest items (by publication date)."""
    query = select(Item).order_by(Item.published_at.desc(), Item.id.desc()).limit(limit)
    if section:
        query = query.where(Item.section == section)
    for item in db.session.scalars(query):
        flags = "hidden" if item.hidden else ("issued" if item.issue_id else "new")
        click.echo(
            f"{item.id:>6}  {item.section:<8}  {item.published_at:%Y-%m-%d}  {flags:<6}  "
            f"{item.title}\n        {item.link}"
        )


@items_cli.command("hide")
@click.argument("item_id", type=ROW_ID)
def hide_item_command(item_id: int) -> None:
    """Hide item ITEM_ID: it will never enter an issue."""
    _set_hidden(item_id, True)


@items_cli.command("unhide")
@click.argument("item_id", type=ROW_ID)
def unhide_item_command(item_id: int) -> None:
    """Show item ITEM_ID again."""
    _set_hidden(item_id, False)


def _set_hidden(item_id: int, hidden: bool) -> None:
    try:
        item = item_service.set_hidden(
            db.session, item_service.get_item(db.session, item_id), hidden
        )
    except ItemError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Item {item.id} is now {'hidden' if hidden else 'shown'}: {item.title}")
