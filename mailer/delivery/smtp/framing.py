"""The bytes of an SMTP transaction: envelope commands and DATA framing (RFC 5321, 2920, 6531).

Pure functions on bytes, shared by the blocking connection (:mod:`.connection`) and the
event-loop channel (:mod:`.channel`), and by the compiled digest, which stuffs its fixed
pieces once per issue.
"""

from ..errors import RecipientNotSupported


def dot_stuff(data: bytes) -> bytes:
    """Return ``data`` with a dot doubled at the start of every line (RFC 5321 §4.5.2).

    ``data`` must begin at a line start: a whole message, or a piece of one that begins a
    line (the compiled digest stuffs its pieces once per issue). No copy when nothing needs
    stuffing.
    """
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    return b"." + data if data[:1] == b"." else data


def data_parts(body: bytes) -> list[bytes]:
    """Return ``body`` as DATA content: dot-stuffed and ended by CRLF "." CRLF (RFC 5321
    §4.5.2), as parts to write in order (no copy of the body when it needs no stuffing)."""
    body = dot_stuff(body)
    return [body, b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"]


def data_bytes(body: bytes) -> bytes:
    """:func:`data_parts` joined into one bytes object."""
    return b"".join(data_parts(body))


def envelope_commands(sender: str, recipient: str, smtputf8: bool) -> list[bytes]:
    """MAIL, RCPT and DATA for one recipient (with the SMTPUTF8 option when it needs it).

    Raises:
        RecipientNotSupported: a non-ASCII address and a relay without SMTPUTF8 (RFC 6531).
    """
    options = ""
    if not recipient.isascii():
        if not smtputf8:
            raise RecipientNotSupported(
                f"{recipient!r} needs SMTPUTF8 (RFC 6531) and the relay does not offer it"
            )
        options = " SMTPUTF8"
    return [
        f"MAIL FROM:<{sender}>{options}\r\n".encode(),
        f"RCPT TO:<{recipient}>\r\n".encode(),
        b"DATA\r\n",
    ]
