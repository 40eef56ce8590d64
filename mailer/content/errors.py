"""Domain errors of the content room (feeds, items); views and the CLI show their message."""


class ContentError(ValueError):
    """Base class: bad input for a feed or an item. ``str(error)`` is a message for a person."""


class FeedError(ContentError):
    """A feed cannot be added or changed: bad URL, unknown section, already added, not found."""


class ItemError(ContentError):
    """An item cannot be created or changed: bad section, link, title, date or field."""


class FetchError(Exception):
    """A feed could not be fetched (network, HTTP status, size cap, missing file).

    Raised by :mod:`mailer.content.fetch` and caught by :func:`mailer.content.feeds.refresh_feed`,
    which records ``str(error)`` on ``Feed.last_error``.
    """
