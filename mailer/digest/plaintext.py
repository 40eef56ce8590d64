"""Plain text for the digest: HTML to text, cutting and wrapping by display width.

Japanese (and other East Asian wide) characters take two columns in a terminal or a
monospaced mail reader, and a Japanese line may break between any two characters, while a
Latin word or a URL must never be split. These helpers follow Unicode's East Asian Width
property (UAX #11) for widths and keep a combining mark with the character before it.
"""

import re
import unicodedata
from html.parser import HTMLParser

# Tags whose content is never text for a reader (a sanitized summary should not have them,
# but a cut that is shown to subscribers must not leak code if one slips through).
_SKIP_CONTENT = frozenset(
    {"script", "style", "iframe", "noscript", "template", "object", "svg", "math", "head"}
)
# Tags that separate words: dropping them without a space would glue two sentences.
_BREAKING = frozenset(
    {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5",
     "h6", "blockquote", "pre", "hr", "table", "section", "article", "figure", "figcaption",
     "dd", "dt", "img"}
)  # fmt: skip
# Closing punctuation that must not start a line (Japanese line-breaking rules, JIS X 4051).
_NO_LINE_START = frozenset(
    "、。，．,.)）」』】〕〉》!！?？:：;；ー・…％%々ぁぃぅぇぉっゃゅょァィゥェォッャュョ"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2028\u2029\ufeff]")
_URL = re.compile(r"^(?:https?://|mailto:)", re.IGNORECASE)
ELLIPSIS = "…"


class _TextExtractor(HTMLParser):
    """Collect the text of an HTML fragment, entities decoded, with spaces at block edges."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_CONTENT:
            self._skipping += 1
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in _BREAKING:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _SKIP_CONTENT:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def clean_line(text: str) -> str:
    """Return ``text`` on one line: control characters dropped, whitespace runs made one space."""
    return " ".join(_CONTROL.sub("", text or "").split())


def html_to_text(fragment: str) -> str:
    """Return the readable text of an HTML fragment on one line.

    Tags are dropped (the content of script, style, iframe and similar is dropped with them),
    entities are decoded once, and whitespace is collapsed. Never raises for bad markup.
    """
    extractor = _TextExtractor()
    extractor.feed(fragment or "")
    extractor.close()
    return clean_line("".join(extractor.parts))


def char_width(char: str) -> int:
    """Columns that ``char`` takes: 2 for East Asian wide/fullwidth, 0 for combining marks."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns that ``text`` takes in a monospaced font (UAX #11 East Asian Width)."""
    return sum(char_width(c) for c in text)


def cut(text: str, columns: int) -> str:
    """Cut ``text`` to at most ``columns`` display columns, ending with "…" when it was cut.

    The cut falls on a space or next to a Japanese character when one is near the end (so
    Latin words stay whole) and never parts a combining mark from its base character.
    """
    if display_width(text) <= columns:
        return text
    budget = columns - 1  # room for the ellipsis
    used = end = 0
    for index, char in enumerate(text):
        used += char_width(char)
        if used > budget:
            break
        end = index + 1
    while 0 < end < len(text) and char_width(text[end]) == 0:
        end -= 1  # the mark after the cut belongs to the character before it
    end = _break_back(text, end)
    return text[:end].rstrip(" ,;:-") + ELLIPSIS


def _break_back(text: str, end: int) -> int:
    """Move ``end`` back to a break opportunity (a space, a wide character) if one is near."""
    pos = end
    while pos > end * 0.75:
        before, after = text[pos - 1], text[pos]
        if " " in (before, after) or _is_wide(before) or _is_wide(after):
            return pos
        pos -= 1
    return end


def _is_wide(char: str) -> bool:
    return bool(char) and char_width(char) == 2


def _units(text: str, room: int) -> list[tuple[str, bool]]:
    """Split text into unbreakable units, each with "a space stood before it".

    A URL stays whole whatever its length; any other run longer than a line is no word a
    reader would want kept whole (a hash, a row of dashes), so it is cut into line-wide
    pieces rather than making a line that mail transports may refuse (RFC 5322 §2.1.1).
    """
    units: list[tuple[str, bool]] = []
    for word in text.split():
        if _URL.match(word):
            units.append((word, True))
            continue
        # A wide character is a unit of its own; a run of narrow ones ("Python") stays whole.
        pieces = _split_wide(word) if any(_is_wide(c) for c in word) else [word]
        chunks = [chunk for piece in pieces for chunk in _chunk(piece, room)]
        units.extend((chunk, index == 0) for index, chunk in enumerate(chunks))
    return units


def _chunk(piece: str, room: int) -> list[str]:
    if display_width(piece) <= room:
        return [piece]
    chunks, current, used = [], "", 0
    for char in piece:
        size = char_width(char)
        if used + size > room and current:
            chunks.append(current)
            current, used = "", 0
        current += char
        used += size
    return [*chunks, current]


def _split_wide(word: str) -> list[str]:
    pieces: list[str] = []
    for char in word:
        glue = pieces and (
            char_width(char) == 0 or (not _is_wide(char) and not _is_wide(pieces[-1][-1]))
        )
        if glue:
            pieces[-1] += char
        else:
            pieces.append(char)
    return pieces


def wrap(text: str, width: int = 72, indent: str = "") -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` display columns (``indent`` included).

    Words and URLs are never split (a URL longer than a line gets a line of its own; a
    non-URL run longer than a line is cut into line-wide pieces); Japanese text may break
    between characters, but closing punctuation never starts a line (JIS X 4051).
    """
    lines: list[str] = []
    line, used = "", 0
    room = max(1, width - display_width(indent))
    for unit, spaced in _units(clean_line(text), room):
        gap = 1 if spaced and line else 0
        size = display_width(unit)
        fits = used + gap + size <= room
        if line and not fits and unit[0] not in _NO_LINE_START:
            lines.append(indent + line)
            line, used, gap = "", 0, 0
        line += " " * gap + unit
        used += gap + size
    if line:
        lines.append(indent + line)
    return lines
