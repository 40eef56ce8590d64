"""Text bodies with per-recipient slots, encoded once and filled in per message.

Each part is quoted-printable or base64, whichever is shorter for the issue's text
(:func:`choose_cte`, the standard library's own rule applied to the whole body): mostly
ASCII HTML is about 1.05 times its size in quoted-printable, while Japanese text is 3 times
its size there and 1.35 times in base64.

Base64 (:class:`Base64Template`): the encoded lines before the 57-octet group that holds the
first marker are fixed; per message the octets from there to the first line boundary after
the last value are encoded by ``base64.encodebytes`` (which cuts lines exactly as
``email.contentmanager`` does), and the lines after that boundary are memoised by the
boundary's offset, which is all they depend on.

Quoted-printable (:class:`BodyTemplate`): the output is byte-for-byte what
``email.message.EmailMessage.set_content(text, cte="quoted-printable")`` gives
(``email.quoprimime.body_encode`` with the policy's line length) after the marker strings
are replaced by the recipient's values. That encoder works line by line: a line without a
marker is encoded once, at compile time, by the standard library itself. A line with a
marker is kept as its escaped pieces; per message the values are escaped (one
``str.translate``) and the line is re-wrapped by :func:`wrap_escaped`, an exact copy of the
standard library's wrapping rule, which only walks the few output lines around the values:
the wrapped rest of the line after the last marker is memoised by the offset it starts at.
A soft line break therefore falls where a full build puts it, and a marker is never split
(it is replaced before wrapping).
"""

import base64
import re
from collections.abc import Mapping
from email.quoprimime import _QUOPRI_BODY_ENCODE_MAP, body_encode

from ..smtp.framing import dot_stuff

# RFC 2045 §6.7 (5): encoded lines are at most 76 characters long.
QP_LINE_LENGTH = 76
CRLF = "\r\n"


def escape(text: str) -> str:
    """Return ``text`` as UTF-8 octets with each unsafe octet written ``=XX`` (no wrapping)."""
    return text.encode("utf-8").decode("latin-1").translate(_QUOPRI_BODY_ENCODE_MAP)


def wrap_escaped(line: str, maxlinelen: int = QP_LINE_LENGTH, stop_at: int | None = None):
    """Wrap one escaped line exactly as ``email.quoprimime.body_encode`` does.

    Args:
        line: an escaped line (see :func:`escape`) without line breaks.
        maxlinelen: the encoded line length, 76 here.
        stop_at: when given, stop as soon as an output line would start at or after this
            index of ``line`` and return ``(pieces, start)`` without the rest.

    Returns:
        ``(pieces, None)``: the output lines (soft breaks included, no CRLF at their ends); or
        ``(pieces, start)`` when stopped early because of ``stop_at``.
    """
    pieces: list[str] = []
    start = 0
    laststart = len(line) - 1 - maxlinelen
    while start <= laststart:
        if stop_at is not None and start >= stop_at:
            return pieces, start
        piece, start = _one_break(line, start, maxlinelen)
        pieces.append(piece)
    if stop_at is not None and start >= stop_at:
        return pieces, start
    pieces.append(_line_end(line, start, laststart))
    return pieces, None


def _one_break(line: str, start: int, maxlinelen: int) -> tuple[str, int]:
    # One soft-broken output line from `start`; never breaks inside an =XX escape. This is
    # the standard library's rule, kept as is (including its use of "=" as the soft break).
    stop = start + maxlinelen - 1
    if line[stop - 2] == "=":
        return line[start : stop - 1], stop - 2
    if line[stop - 1] == "=":
        return line[start:stop], stop - 1
    return line[start:stop] + "=", stop


def _line_end(line: str, start: int, laststart: int) -> str:
    # A space or tab at the end of a line must be encoded (RFC 2045 §6.7 (3)).
    if not line or line[-1] not in " \t":
        return line[start:]
    room = start - laststart
    if room >= 3:
        tail = f"={ord(line[-1]):02X}"
    elif room == 2:
        tail = line[-1] + "=" + CRLF
    else:
        tail = f"={CRLF}={ord(line[-1]):02X}"
    return line[start:-1] + tail


class _SlotLine:
    """One body line holding markers: escaped static pieces around named slots."""

    def __init__(self, escaped_line: str, pattern: re.Pattern, maxlinelen: int):
        parts = pattern.split(escaped_line)
        self.statics = parts[0::2]
        self.slots = parts[1::2]
        self.maxlinelen = maxlinelen
        # The output lines of the first static piece that no value can change.
        fixed, cut = _fixed_prefix(self.statics[0], maxlinelen)
        self.prefix = "".join(p + CRLF for p in fixed)
        self.head_tail = self.statics[0][cut:]
        self._tail_cache: dict[int, str] = {}

    def render(self, values: Mapping[str, str]) -> bytes:
        """Return this line encoded with ``values`` (escaped slot values), CRLF-terminated."""
        statics, slots = self.statics, self.slots
        if len(slots) == 1:
            dynamic = self.head_tail + values[slots[0]]
        else:
            middle = [self.head_tail]
            for index, slot in enumerate(slots):
                middle.append(values[slot])
                if index + 1 < len(slots):
                    middle.append(statics[index + 1])
            dynamic = "".join(middle)
        line = dynamic + statics[-1]
        if len(line) <= self.maxlinelen and line[-1:] not in (" ", "\t"):
            # Fits on one encoded line: nothing to wrap (the common case for footer lines).
            return (self.prefix + line + CRLF).encode("ascii")
        pieces, start = wrap_escaped(line, self.maxlinelen, stop_at=len(dynamic))
        out = self.prefix + "".join([p + CRLF for p in pieces])
        if start is not None:
            out += self._tail(start - len(dynamic))
        return out.encode("ascii")

    def _tail(self, offset: int) -> str:
        # The last static piece wraps the same way whenever it is entered at the same
        # offset, whatever came before it on the line; memoise by that offset.
        cached = self._tail_cache.get(offset)
        if cached is None:
            pieces, _ = wrap_escaped(self.statics[-1][offset:], self.maxlinelen)
            cached = "".join(p + CRLF for p in pieces)
            self._tail_cache[offset] = cached
        return cached


def _fixed_prefix(static: str, maxlinelen: int) -> tuple[list[str], int]:
    # The standard library decides a break at `start` from the 76 characters after it and
    # from whether more than `maxlinelen` remain; while `static` alone has that many left,
    # nothing after it can change the decision.
    fixed: list[str] = []
    start = 0
    laststart = len(static) - 1 - maxlinelen
    while start <= laststart:
        piece, start = _one_break(static, start, maxlinelen)
        fixed.append(piece)
    return fixed, start


class BodyTemplate:
    """A text body encoded once as quoted-printable, with slots filled in per message."""

    def __init__(self, text: str, markers: tuple[str, ...], maxlinelen: int = QP_LINE_LENGTH):
        """Encode ``text`` (str) once; ``markers`` are the ASCII strings to fill in later."""
        pattern = re.compile("(" + "|".join(re.escape(m) for m in markers) + ")")
        self.maxlinelen = maxlinelen
        # The standard library splits the UTF-8 octets at CR, LF and CRLF (bytes.splitlines).
        lines = text.encode("utf-8").splitlines() or [b""]
        self.chunks: list[bytes | _SlotLine] = []
        static: list[str] = []
        for raw in lines:
            line = raw.decode("latin-1")
            if pattern.search(line):
                self._flush(static)
                escaped = line.translate(_QUOPRI_BODY_ENCODE_MAP)
                self.chunks.append(_SlotLine(escaped, pattern, maxlinelen))
            else:
                static.append(line)
        self._flush(static)
        # Every chunk starts at a line start, so each can be dot-stuffed on its own, once.
        self.stuffed_chunks = [
            dot_stuff(chunk) if chunk.__class__ is bytes else chunk for chunk in self.chunks
        ]

    def _flush(self, static: list[str]) -> None:
        if static:
            encoded = body_encode("\n".join(static) + "\n", self.maxlinelen)
            self.chunks.append(encoded.replace("\n", CRLF).encode("ascii"))
            static.clear()

    def extend(self, out: list[bytes], values: Mapping[str, str], stuffed: bool = False) -> None:
        """Append the encoded body's pieces (ASCII, CRLF line ends) to ``out``.

        Args:
            out: the list the caller joins into the message.
            values: marker -> value (str); values must not be empty or hold line breaks
                (the callers check).
            stuffed: give the pieces dot-stuffed for SMTP DATA (RFC 5321 §4.5.2); the fixed
                ones were stuffed once, only the filled-in lines are stuffed here.
        """
        escaped = {marker: escape(value) for marker, value in values.items()}
        for chunk in self.stuffed_chunks if stuffed else self.chunks:
            if chunk.__class__ is bytes:
                out.append(chunk)
            elif stuffed:
                out.append(dot_stuff(chunk.render(escaped)))
            else:
                out.append(chunk.render(escaped))

    def render(self, values: Mapping[str, str]) -> bytes:
        """Return the whole encoded body with the slots filled in (see :meth:`extend`)."""
        out: list[bytes] = []
        self.extend(out, values)
        return b"".join(out)


class Base64Template:
    """A text body encoded once as base64, the part around the markers filled per message."""

    def __init__(self, text: str, markers: tuple[str, ...], maxlinelen: int = QP_LINE_LENGTH):
        """Encode ``text`` (str) once; ``markers`` are the ASCII strings to fill in later."""
        pattern = re.compile(b"(" + b"|".join(re.escape(m.encode("ascii")) for m in markers) + b")")
        data = canonical_octets(text)
        self.group = maxlinelen // 4 * 3  # octets per encoded line (57 for 76 characters)
        first = pattern.search(data)
        cut = len(data) if first is None else first.start() // self.group * self.group
        self.prefix = _encode_lines(data[:cut])
        parts = pattern.split(data[cut:])
        self.statics = parts[0::2]
        self.slots = [slot.decode("ascii") for slot in parts[1::2]]
        self._tail_cache: dict[int, bytes] = {}

    def extend(self, out: list[bytes], values: Mapping[str, str], stuffed: bool = False) -> None:
        """Append the encoded body to ``out``; ``values`` maps marker -> value (str).

        ``stuffed`` changes nothing: no base64 line starts with a dot (RFC 4648 §4 alphabet),
        so the lines need no dot-stuffing for SMTP DATA.
        """
        statics = self.statics
        head = [statics[0]]
        for index, slot in enumerate(self.slots):
            head.append(values[slot].encode("utf-8"))
            if index + 1 < len(self.slots):
                head.append(statics[index + 1])
        dynamic = b"".join(head)
        last = statics[-1]
        # Encode up to the next line boundary inside the last static piece; from there on
        # its lines are the same whatever the values were, memoised by that offset.
        offset = min(-len(dynamic) % self.group, len(last))
        out.append(self.prefix)
        out.append(_encode_lines(dynamic + last[:offset]))
        out.append(self._tail(offset))

    def _tail(self, offset: int) -> bytes:
        cached = self._tail_cache.get(offset)
        if cached is None:
            cached = _encode_lines(self.statics[-1][offset:])
            self._tail_cache[offset] = cached
        return cached

    def render(self, values: Mapping[str, str]) -> bytes:
        """Return the whole encoded body with the slots filled in (see :meth:`extend`)."""
        out: list[bytes] = []
        self.extend(out, values)
        return b"".join(out)


def canonical_octets(text: str) -> bytes:
    """Return ``text`` as UTF-8 with CRLF line ends and a final CRLF (RFC 2046 §4.1.1).

    This is what ``email.contentmanager`` encodes as base64: it splits the octets at CR, LF
    and CRLF and joins them with the policy's line separator.
    """
    return b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"


def _encode_lines(data: bytes) -> bytes:
    # base64.encodebytes writes 76-character lines (57 octets each), as the standard library's
    # email package does for max_line_length=76; the message wants CRLF after each.
    if not data:
        return b""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def choose_cte(text: str, maxlinelen: int = QP_LINE_LENGTH) -> str:
    """Return "quoted-printable" or "base64", whichever encodes ``text`` shorter (QP on a tie).

    Deterministic for a given text, so the fast path and the reference build agree.
    """
    lines = text.encode("utf-8").splitlines()
    qp_length = len(body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), maxlinelen))
    octets = len(b"\r\n".join(lines)) + 2
    group = maxlinelen // 4 * 3
    full, rest = divmod(octets, group)
    b64_length = full * (maxlinelen + 1) + ((rest + 2) // 3 * 4 + 1 if rest else 0)
    return "quoted-printable" if qp_length <= b64_length else "base64"


def body_template(text: str, markers: tuple[str, ...]) -> tuple[str, BodyTemplate | Base64Template]:
    """Return (Content-Transfer-Encoding, template) for ``text``, as :func:`choose_cte` says."""
    cte = choose_cte(text)
    if cte == "base64":
        return cte, Base64Template(text, markers)
    return cte, BodyTemplate(text, markers)
