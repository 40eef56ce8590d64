"""Topics a subscriber gets: news, job openings or both (``Subscriber.sections``).

Stored in ``Section.key`` form ("news", "openings" or "news,openings"), which is also the
name of the digest variant the subscriber receives (``delivery`` picks it per subscriber).
"""

from ..models import Section
from .errors import InvalidSections

LABELS = {Section.NEWS: "News", Section.OPENINGS: "Job openings"}
CHOICES_MESSAGE = 'Choose "news", "openings" or both as sections.'


def parse_sections(values: object, *, absent_means_both: bool = True) -> str:
    """Return the stored form of the topics a visitor chose.

    Args:
        values: None (the field was absent), or a list of strings from a form's repeated
            ``sections`` field or a JSON array.
        absent_means_both: None gives both topics (the signup form); otherwise None is
            refused like an empty choice.

    Raises:
        InvalidSections: a value other than ``news`` or ``openings``, a value that is not a
            string, or no topic at all.
    """
    if values is None:
        if absent_means_both:
            return Section.BOTH
        values = []
    if not isinstance(values, list | tuple):
        raise InvalidSections(CHOICES_MESSAGE)
    chosen = set()
    for value in values:
        if not isinstance(value, str) or value.strip().lower() not in Section.ALL:
            raise InvalidSections(CHOICES_MESSAGE)
        chosen.add(value.strip().lower())
    if not chosen:
        raise InvalidSections("Choose at least one: news, openings or both.")
    return Section.key(chosen)


def describe(key: str | None) -> str:
    """Return the topics for people: "News", "Job openings" or "News and job openings"."""
    parts = [LABELS[value] for value in (key or Section.BOTH).split(",") if value in LABELS]
    if len(parts) == 2:
        return f"{parts[0]} and {parts[1].lower()}"
    return parts[0] if parts else ""
