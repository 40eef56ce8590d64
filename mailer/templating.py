"""Mail templates: each mail is a triplet ``NAME_subject.txt``, ``NAME.txt``, ``NAME.html``.

One helper resolves and renders the three with the app's Jinja environment, so every mail
gets the same autoescaping (on for ``.html``, off for ``.txt``, Flask's rule) and the same
tidying of the subject and the text part.
"""

import re
from dataclasses import dataclass

from flask import render_template

# Trailing blanks go, except the one of the signature separator "-- " (RFC 3676 §4.3).
_TRAILING_SPACE = re.compile(r"(?<!^--)[ \t]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class RenderedMail:
    """A rendered mail: a one-line subject, the text part and the HTML part (both str)."""

    subject: str
    text: str
    html: str


def render_mail(name: str, **context) -> RenderedMail:
    """Render ``templates/email/{name}_subject.txt``, ``{name}.txt`` and ``{name}.html``.

    Args:
        name: the triplet's name, e.g. ``"digest"`` or ``"confirm"``.
        **context: template variables, the same for all three templates.

    Returns:
        RenderedMail; its subject is one line (every run of whitespace, line breaks included,
        becomes one space, so no template or input can add a header line); its text has no
        trailing spaces and at most one blank line in a row, and ends with one newline.

    Raises:
        RuntimeError: outside an app context. jinja2.TemplateNotFound: for a missing template.
    """
    subject = render_template(f"email/{name}_subject.txt", **context)
    text = render_template(f"email/{name}.txt", **context)
    html = render_template(f"email/{name}.html", **context)
    return RenderedMail(subject=one_line(subject), text=tidy_text(text), html=html)


def one_line(text: str) -> str:
    """Return ``text`` with every run of whitespace (CR, LF, U+2028 ...) made one space."""
    return " ".join(text.split())


def tidy_text(text: str) -> str:
    """Drop trailing spaces (not the one of "-- "), squeeze blank lines, end with a newline."""
    text = _TRAILING_SPACE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _BLANK_RUN.sub("\n\n", text).strip("\n") + "\n"
