"""Assemble a message with the standard library's email package (the reference build).

Header values arrive already formatted and folded (see ``mime_headers``) and are stored with
``set_raw`` so that the library writes them as they are; the library builds the MIME
structure and encodes the bodies (quoted-printable, 76-character lines, RFC 2045 §6.7).
"""

from email import policy
from email.message import EmailMessage, MIMEPart

from .headers import FOLD

# utf8=True only matters for a UTF-8 recipient address (RFC 6532); every other header we
# write is ASCII. refold_source="none": our folded values are written unchanged.
POLICY = policy.default.clone(linesep="\r\n", max_line_length=76, refold_source="none", utf8=True)


def text_part(subtype: str, text: str, cte: str) -> MIMEPart:
    """Return a text/``subtype`` part, UTF-8, ``cte`` "quoted-printable" or "base64"."""
    part = MIMEPart(policy=POLICY)
    part.set_content(text, subtype=subtype, charset="utf-8", cte=cte)
    return part


def assemble(headers: list[tuple[str, str]], parts: list[tuple[str, str, str]], boundary: str):
    """Return the message bytes: ``headers`` in order, then the body.

    Args:
        headers: (name, folded value) pairs, values with CRLF + space folding.
        parts: (subtype, text, cte) triples; two or more make a multipart/alternative
            with ``boundary``, one makes a single text part.

    Returns:
        bytes with CRLF line ends.
    """
    root = EmailMessage(policy=POLICY)
    for name, value in headers:
        root.set_raw(name, value)
    if len(parts) == 1:
        subtype, text, cte = parts[0]
        root.set_content(text, subtype=subtype, charset="utf-8", cte=cte)
        return root.as_bytes(policy=POLICY)
    root.set_raw("Content-Type", f'multipart/alternative;{FOLD}boundary="{boundary}"')
    for subtype, text, cte in parts:
        root.attach(text_part(subtype, text, cte))
    return root.as_bytes(policy=POLICY)
