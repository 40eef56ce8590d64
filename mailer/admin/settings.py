"""Settings (read-only): the effective configuration with secrets masked, and the signup-form
snippet to embed in the news site's pages."""

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from flask import current_app, render_template

from config import DEFAULT_SECRET_KEY

from ..subscriptions.views import HONEYPOT_FIELD
from .blueprint import bp

SHOWN_PREFIXES = (
    "MAILER_",
    "SQLALCHEMY_DATABASE_URI",
    "SECRET_KEY",
    "RATELIMIT_",
    "SESSION_COOKIE_",
    "REMEMBER_COOKIE_",
    "WTF_CSRF_ENABLED",
    "DEBUG",
    "TESTING",
)
SECRET_WORDS = ("SECRET", "PASSWORD")
MASK = "********"


def mask_url(value: str) -> str:
    """Return ``value`` with the password of a URL's user info replaced by the mask."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def display_value(name: str, value) -> str:
    """Return a setting as shown on the settings page: secrets masked, URLs without password.

    A key path (MAILER_DKIM_PRIVATE_KEY) is shown; a PEM key pasted into a setting is not.
    """
    if any(word in name for word in SECRET_WORDS):
        if not value:
            return "(not set)"
        return f"{MASK} (the insecure default: change it)" if value == DEFAULT_SECRET_KEY else MASK
    text = str(value)
    if "-----BEGIN" in text:
        return MASK
    if "://" in text:
        return mask_url(text)
    return text


def effective_settings(config: Mapping) -> list[tuple[str, str]]:
    """Return [(name, shown value)] of the settings an operator may need, sorted by name."""
    names = sorted(name for name in config if name.startswith(SHOWN_PREFIXES))
    return [(name, display_value(name, config[name])) for name in names]


def signup_snippet(base_url: str, honeypot: str) -> str:
    """Return the HTML form to paste into the news site: it posts ``email`` to /subscribe.

    Two ``sections`` checkboxes (news, openings), both ticked; with neither ticked the
    service sends both, as when the field is absent. The honeypot field is hidden from
    people (off screen, out of the tab order) and left empty by them; the subscriptions room
    treats a filled one as a bot.
    """
    return (
        f'<form action="{base_url}/subscribe" method="post">\n'
        '  <label for="newsletter-email">Your e-mail address</label>\n'
        '  <input id="newsletter-email" type="email" name="email" required '
        'autocomplete="email">\n'
        "  <fieldset>\n"
        "    <legend>What would you like to get?</legend>\n"
        '    <label><input type="checkbox" name="sections" value="news" checked> News</label>\n'
        '    <label><input type="checkbox" name="sections" value="openings" checked> '
        "Job openings</label>\n"
        "  </fieldset>\n"
        '  <div aria-hidden="true" style="position:absolute;left:-10000px">\n'
        f'    <input type="text" name="{honeypot}" tabindex="-1" autocomplete="off" '
        'value="">\n'
        "  </div>\n"
        '  <button type="submit">Subscribe</button>\n'
        "</form>\n"
    )


@bp.get("/settings")
def settings_page():
    """Show the effective configuration and the embeddable signup form."""
    config = current_app.config
    return render_template(
        "admin/settings.html",
        settings=effective_settings(config),
        snippet=signup_snippet(config["MAILER_BASE_URL"], HONEYPOT_FIELD),
    )
