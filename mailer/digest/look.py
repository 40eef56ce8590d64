"""How an issue reads: its date in words, the intro line, the subject, summaries cut at a
sentence and kept as paragraphs and lists. Plain functions, used by :mod:`.render`."""

import re
from dataclasses import dataclass
from datetime import date

from .plaintext import ELLIPSIS, TextBlock, cut, display_width, phrases

SUBJECT_CHARACTERS = 70  # "about 70": what most inboxes show of a subject on a laptop
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
# The end of a sentence: Latin punctuation before a space, or Japanese full stops.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s|(?<=[。！？])")
_LIST_LEAD = re.compile(r"^\s*(-|\d+\.)\s$")


def issue_date(year: int, week: int, digest_day: str) -> date:
    """The day an issue of ISO week ``week`` goes out: ``MAILER_DIGEST_DAY`` of that week
    (Monday when the setting is not a day name)."""
    day = (digest_day or "").strip().lower()[:3]
    weekday = next((n for n, name in enumerate(_DAYS, 1) if name.startswith(day) and day), 1)
    return date.fromisocalendar(year, week, weekday)


def date_in_words(day: date) -> str:
    """``"Monday, 7 December 2026"``: English, no locale involved."""
    return f"{_DAYS[day.weekday()].capitalize()}, {day.day} {_MONTHS[day.month - 1]} {day.year}"


def counted(number: int, one: str, many: str) -> str:
    """``"1 story"``, ``"6 stories"``."""
    return f"{number} {one if number == 1 else many}"


def intro_line(news: int | None, openings: int | None) -> str:
    """What is inside, e.g. ``"6 stories and 12 job openings this week"``.

    ``None`` leaves a topic out (a variant without it); 0 says there was nothing.
    """
    parts = []
    if news:
        parts.append(counted(news, "story", "stories"))
    if openings:
        parts.append(counted(openings, "job opening", "job openings"))
    if not parts:
        return "Nothing new this week"
    return " and ".join(parts) + " this week"


def subject_line(name: str, headline: str, limit: int = SUBJECT_CHARACTERS) -> str:
    """The newsletter's name and the top story, at most ``limit`` characters.

    The headline is cut at a word boundary (a space, or between Japanese phrases as BudouX
    finds them), or between two characters when no boundary is near the end, and ends
    with "…" when cut. The name is never cut.
    """
    if not headline:
        return name
    full = f"{name}: {headline}"
    if len(full) <= limit:
        return full
    room = limit - len(name) - 2 - len(ELLIPSIS)
    if room < 8:  # a name too long to leave room for a useful part of the headline
        return name
    kept = ""
    for piece in phrases(headline):  # words, and Japanese phrases (BudouX)
        if len(kept) + len(piece) > room:
            break
        kept += piece
    # A single word or phrase longer than most of the room is cut between two characters.
    if len(kept) < room * 0.6:
        kept = headline[:room]
    return f"{name}: {kept.rstrip(' ,;:-–—')}{ELLIPSIS}"


def cut_at_sentence(text: str, columns: int) -> str:
    """Cut ``text`` to at most ``columns`` display columns, at the end of a sentence.

    The longest run of whole sentences that fits is kept (no ellipsis: it reads as
    complete); when not even the first sentence fits, the text is cut at a word with "…".
    """
    if display_width(text) <= columns:
        return text
    best = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if display_width(text[:end].rstrip()) > columns:
            break
        best = end
    if best:
        return text[:best].rstrip()
    return cut(text, columns)


@dataclass(frozen=True)
class SummaryPart:
    """A paragraph (``kind`` "p", one text) or a list ("ul"/"ol", its items' texts)."""

    kind: str
    texts: tuple[str, ...]


def summary_parts(blocks: list[TextBlock]) -> list[SummaryPart]:
    """Group a summary's blocks into paragraphs and lists for the HTML part.

    Consecutive list items (a "- " or "1. " lead, as :func:`plaintext.html_to_blocks` marks
    them) become one list; nested items join their outer list; other blocks are paragraphs.
    """
    parts: list[SummaryPart] = []
    for block in blocks:
        marker = _LIST_LEAD.match(block.lead or "")
        if marker is None:
            parts.append(SummaryPart("p", (block.text,)))
            continue
        kind = "ol" if marker.group(1)[0].isdigit() else "ul"
        if parts and parts[-1].kind == kind:
            parts[-1] = SummaryPart(kind, (*parts[-1].texts, block.text))
        else:
            parts.append(SummaryPart(kind, (block.text,)))
    return parts
