"""DKIM "relaxed" canonicalization of header fields and bodies (RFC 6376 §3.4.2, §3.4.4).

Pure functions on bytes (CRLF line ends, as we write them). The body form has a fast path:
a body with no tab, no run of spaces and no space before a line end (most encoded bodies:
quoted-printable writes a line-end space as ``=20``, base64 has none) is its own canonical
form apart from trailing empty lines, so it is found with three substring searches in C.
"""

import base64
import hashlib
import re

CRLF = b"\r\n"
_WSP_RUN = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r?\n")


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """Return one header field in relaxed form: ``name:value`` CRLF (RFC 6376 §3.4.2).

    The name lowercased; the value unfolded, each run of spaces and tabs made one space,
    and spaces removed at both ends (and so around the colon).
    """
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" ")
    return name.strip().lower() + b":" + value + CRLF


def relaxed_body(body: bytes) -> bytes:
    """Return ``body`` in relaxed form (RFC 6376 §3.4.4).

    Spaces and tabs at line ends removed, other runs of them made one space, empty lines at
    the end removed, and a non-empty body ended by one CRLF; an empty body stays empty.
    """
    if body and not body.endswith(CRLF):
        body += CRLF
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", CRLF)
    end = len(body)
    while end >= 4 and body[end - 4 : end] == b"\r\n\r\n":
        end -= 2
    if end == 2 and body[:2] == CRLF:
        return b""  # a body of empty lines only is an empty body
    return body[:end] if end != len(body) else body


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header block (CRLF line ends) into ``(name, raw value)`` pairs, in order.

    A raw value keeps its folding (CRLF followed by a space or tab) and the text after the
    colon as written; lines that continue a field are joined to it (RFC 5322 §2.2.3).
    """
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(CRLF):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + CRLF + line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            fields.append((name, value))
    return fields


def pick_headers(fields: list[tuple[bytes, bytes]], names: list[str]) -> list[tuple[bytes, bytes]]:
    """Return the fields h= ``names`` select, in h= order (RFC 6376 §5.4.2).

    For a name listed several times, the last instance comes first, then the one above it;
    a name listed more often than it occurs selects nothing (over-signing, §8.15).
    """
    by_name: dict[str, list[tuple[bytes, bytes]]] = {}
    for name, value in fields:
        by_name.setdefault(name.strip().lower().decode("ascii", "replace"), []).append(
            (name, value)
        )
    picked = []
    for name in names:
        instances = by_name.get(name)
        if instances:
            picked.append(instances.pop())
    return picked


def relaxed_lines(piece: bytes) -> bytes:
    """Return whole lines in relaxed form, without the end-of-body rule (RFC 6376 §3.4.4 a, b)."""
    if b"\t" in piece or b"  " in piece or b" \r\n" in piece:
        return _WSP_RUN.sub(b" ", piece).replace(b" \r\n", CRLF)
    return piece


def body_hash(body: bytes) -> bytes:
    """Return the base64 SHA-256 of ``body`` in relaxed form: the bh= value (RFC 6376 §3.7)."""
    return base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())


class PieceHasher:
    """The bh= of bodies written as a list of pieces, most of them the same for every message.

    Made from two sample bodies (the pieces of two messages with different per-recipient
    values): the leading pieces that are the very same objects in both are hashed once
    (a SHA-256 state copied per message); the canonical form of every piece of the samples is
    kept. Per message only the pieces after that prefix are hashed, and only the pieces not
    seen before are canonicalized. Relaxed canonicalization works line by line, so pieces
    may be canonicalized apart when each ends a line; a body where one does not, or that
    ends with an empty line, is hashed whole with :func:`body_hash` instead.
    """

    def __init__(self, sample: list[bytes], other: list[bytes]):
        count = 0
        while count < min(len(sample), len(other)) and sample[count] is other[count]:
            count += 1
        self._prefix = sample[:count]
        self._canonical = {p: relaxed_lines(p) for p in (*sample, *other) if p.endswith(CRLF)}
        self._state = hashlib.sha256()
        for piece in self._prefix:
            self._state.update(self._canonical.get(piece, b""))
        # The prefix can be used only if each of its pieces ends a line.
        self._usable = count < len(sample) and all(p.endswith(CRLF) or not p for p in self._prefix)

    def hash(self, pieces: list[bytes]) -> bytes:
        """Return the bh= value (base64 bytes) of the body ``b"".join(pieces)``."""
        if self._fits(pieces):
            state = self._state.copy()
            known = self._canonical
            last = b""
            for piece in pieces[len(self._prefix) :]:
                if not piece:
                    continue
                last = known.get(piece)
                if last is None:
                    if not piece.endswith(CRLF):
                        break
                    last = relaxed_lines(piece)
                state.update(last)
            else:
                # Empty lines at the end of the body are not hashed (§3.4.4): whole body then.
                if last.endswith(CRLF) and last != CRLF and not last.endswith(b"\r\n\r\n"):
                    return base64.b64encode(state.digest())
        return body_hash(b"".join(pieces))

    def _fits(self, pieces: list[bytes]) -> bool:
        prefix = self._prefix
        if not self._usable or len(pieces) <= len(prefix):
            return False
        return all(piece is prefix[index] for index, piece in enumerate(pieces[: len(prefix)]))
