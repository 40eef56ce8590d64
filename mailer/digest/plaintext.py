"""Plain text for the digest: HTML to text, cutting and wrapping by display width.

Japanese (and other East Asian wide) characters take two columns in a terminal or a
monospaced mail reader, and a Japanese line may break between any two characters, while a
Latin word or a URL must never be split. These helpers follow Unicode's East Asian Width
property (UAX #11) for widths and keep a combining mark with the character before it.

The HTML part shows a summary as one paragraph; the text part keeps its structure instead
(paragraphs and lines after <br> on lines of their own, list items as "- " or "1. " lines),
because a plain-text reader has no other way to see where one list item ends.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from html.parser import HTMLParser

import budoux

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
# Indent beyond which nested list items stop moving right (display columns), so that a
# deeply nested list in a feed cannot push text past the line width.
_MAX_INDENT = 8


@dataclass(frozen=True)
class TextBlock:
    """One block of an HTML fragment's text: a paragraph, a list item, or a line after <br>.

    ``text`` is one clean line (no markup, entities decoded, spaces collapsed); ``lead`` goes
    before its first line (a list marker such as ``"- "`` or ``"  2. "``, or the ``indent`` of
    the list item that a ``<br>`` or a nested list interrupted) and ``indent`` before its
    other lines, so that a wrapped list item hangs under its own text. Both are ASCII spaces
    and markers of the same width.
    """

    text: str
    lead: str = ""
    indent: str = ""

    def lines(self, width: int) -> list[str]:
        """The block wrapped to ``width`` display columns, lead and indent included."""
        lines = wrap(self.text, width, indent=self.indent)
        if lines:
            lines[0] = self.lead + lines[0][len(self.indent) :]
        return lines


class _BlockExtractor(HTMLParser):
    """Collect the text of an HTML fragment as :class:`TextBlock` items, lists marked.

    Every tag in ``_BREAKING`` ends a block; ``<li>`` starts one with "- " (in ``<ul>``) or
    "N. " (in ``<ol>``), indented under the item of the enclosing list.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[TextBlock] = []
        self._parts: list[str] = []
        self._skipping = 0
        # One entry per open <ul>/<ol>: [ordered, items so far, indent of its open item].
        self._lists: list[list] = []
        self._lead: str | None = None  # the marker of an item whose text has not come yet

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_CONTENT:
            self._skipping += 1
        elif tag in _BREAKING:
            self._flush()
            if not self._skipping:
                self._open(tag)

    def handle_startendtag(self, tag, attrs):
        if tag in _BREAKING:
            self._flush()

    def handle_endtag(self, tag):
        if tag in _SKIP_CONTENT:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BREAKING:
            self._flush()
            if not self._skipping:
                self._close(tag)

    def handle_data(self, data):
        if not self._skipping:
            self._parts.append(data)

    def close(self):
        super().close()
        self._flush()

    def _open(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0, None])
        elif tag == "li":
            if not self._lists:  # a stray <li>: show it as an item all the same
                self._lists.append([False, 0, None])
            frame = self._lists[-1]
            frame[2] = None  # an unclosed earlier item of this list ends here
            parent = self._indent()[:_MAX_INDENT]
            frame[1] += 1
            marker = f"{frame[1]}. " if frame[0] else "- "
            self._lead = parent + marker
            frame[2] = parent + " " * len(marker)

    def _close(self, tag: str) -> None:
        if tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "li" and self._lists:
            self._lists[-1][2] = None
        if tag in ("ul", "ol", "li"):
            self._lead = None

    def _indent(self) -> str:
        for frame in reversed(self._lists):
            if frame[2] is not None:
                return frame[2]
        return ""

    def _flush(self) -> None:
        text = clean_line("".join(self._parts))
        self._parts = []
        if text:
            indent = self._indent()
            lead = indent if self._lead is None else self._lead
            self.blocks.append(TextBlock(text, lead, indent))
            self._lead = None


def clean_line(text: str) -> str:
    """Return ``text`` on one line: control characters dropped, whitespace runs made one space."""
    return " ".join(_CONTROL.sub("", text or "").split())


def html_to_blocks(fragment: str) -> list[TextBlock]:
    """Return the readable text of an HTML fragment as blocks for the plain-text part.

    Paragraphs and other block elements, and each line after a ``<br>``, become blocks of
    their own; list items get "- " (``<ul>``) or "1. ", "2. "... (``<ol>``), nested lists two
    more columns of indent (at most :data:`_MAX_INDENT`). Tags are dropped (the content of
    script, style, iframe and similar with them), entities decoded once, whitespace
    collapsed; empty blocks are left out. Never raises for bad markup.
    """
    extractor = _BlockExtractor()
    extractor.feed(fragment or "")
    extractor.close()
    return extractor.blocks


def html_to_text(fragment: str) -> str:
    """Return the readable text of an HTML fragment on one line (list markers left out).

    The blocks of :func:`html_to_blocks` joined by one space: what the HTML part shows.
    """
    return " ".join(block.text for block in html_to_blocks(fragment))


def cut_blocks(blocks: Sequence[TextBlock], columns: int) -> list[TextBlock]:
    """Cut ``blocks`` where :func:`cut` cuts their one-line text (:func:`html_to_text`).

    Args:
        blocks: from :func:`html_to_blocks`.
        columns: display columns allowed for their text, one column counted between blocks
            (markers and indents are not counted).

    Returns:
        The blocks that fit, the last one cut and ending with "…" when anything was left
        out; joined by spaces their texts equal ``cut(html_to_text(...), columns)``, so the
        text part shows the same words as the HTML part.
    """
    line = " ".join(block.text for block in blocks)
    short = cut(line, columns)
    if short == line:
        return list(blocks)
    kept_text = short[: -len(ELLIPSIS)]  # a prefix of ``line``: cut() only drops the end
    kept: list[TextBlock] = []
    start = 0
    for block in blocks:
        end = start + len(block.text)
        if end <= len(kept_text):
            kept.append(block)
            start = end + 1  # the space between two blocks
            continue
        rest = kept_text[start:]
        if rest:
            kept.append(replace(block, text=rest + ELLIPSIS))
        elif kept:
            kept[-1] = replace(kept[-1], text=kept[-1].text + ELLIPSIS)
        break
    return kept or [replace(blocks[0], text=ELLIPSIS)]


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


@cache
def _japanese_parser():
    # BudouX's model finds the phrase boundaries of Japanese (where a line may break without
    # splitting a word: "スキー場" stays whole); loaded once per process.
    return budoux.load_default_japanese_parser()


def phrases(text: str) -> list[str]:
    """``text`` in pieces that may be broken between: Japanese phrases (BudouX) and, between
    spaces, words (each piece but the first of a word keeps no space before it)."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        parts = _split_wide(word) if any(_is_wide(c) for c in word) else [word]
        if index:
            parts[0] = " " + parts[0]
        pieces.extend(parts)
    return pieces


def _split_wide(word: str) -> list[str]:
    """Split a run holding wide characters at its phrase boundaries (BudouX), keeping a
    Latin word inside it whole; a phrase still wider than a line is cut later (``_chunk``)."""
    phrases = _japanese_parser().parse(word)
    pieces: list[str] = []
    for phrase in phrases:
        # BudouX may attach closing punctuation to the next phrase; keep it with this one.
        if pieces and phrase and (phrase[0] in _NO_LINE_START or char_width(phrase[0]) == 0):
            pieces[-1] += phrase[0]
            phrase = phrase[1:]
        if phrase:
            pieces.append(phrase)
    return pieces or [word]


def wrap(text: str, width: int = 72, indent: str = "") -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` display columns (``indent`` included).

    Words and URLs are never split (a URL longer than a line gets a line of its own; a
    non-URL run longer than a line is cut into line-wide pieces); Japanese text breaks
    between phrases (BudouX, so that a word such as "スキー場" is never split), and closing
    punctuation never starts a line (JIS X 4051).
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
