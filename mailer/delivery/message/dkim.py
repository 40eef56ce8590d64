"""DKIM signing (RFC 6376) at OpenSSL speed: our own canonicalization, ``cryptography``'s keys.

Each message gets an rsa-sha256 signature (PKCS#1 v1.5, RFC 8301) and, when an Ed25519 key
is configured, a second, ed25519-sha256 one (RFC 8463): receivers that know Ed25519 use it,
the others the RSA one. Both use relaxed/relaxed canonicalization (:mod:`.canonical`), and
h= covers the headers RFC 8058 §4 asks for (List-Unsubscribe and List-Unsubscribe-Post)
besides From, To, Subject, Date, Message-ID, List-Id, MIME-Version and Content-Type.

Per message the work is: the body hash (hashlib over the body we hold, tens of microseconds
for a 20 KB digest), the canonical form of the headers that change per recipient, and one
private-key operation in OpenSSL (about 0.5 ms for RSA-2048, 0.05 ms for Ed25519). The keys
are loaded once per signer; a compiled issue prepares its header list, the canonical form of
its fixed headers and the fixed part of the DKIM-Signature once (:meth:`DkimSigner.prepare`).
dkimpy is not used to sign; the tests use it, an independent implementation, to verify.
"""

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ... import clock
from .canonical import body_hash, header_fields, pick_headers, relaxed_header
from .dkim_keys import (  # noqa: F401 - re-exported: the room's key functions live here too
    ED25519,
    MINIMUM_BITS,
    RECOMMENDED_BITS,
    RSA,
    DkimConfigError,
    dns_answer_from_key,
    dns_record,
    generate_ed25519_key,
    generate_private_key,
    key_bits,
    load_ed25519,
    load_rsa,
    public_key_b64,
    read_private_key,
    txt_record_value,
    verify,
    write_private_key,
)

# Signed when present, in this order (RFC 6376 §5.4.1 recommends the first group; RFC 8058
# §4 requires the two List-Unsubscribe headers; RFC 3834 Auto-Submitted on transactional).
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
)
# Listed once more than they occur ("over-signing", RFC 6376 §8.15): a second From or a
# second List-Unsubscribe added on the way would then break the signature.
OVERSIGNED_HEADERS = ("from", "list-unsubscribe", "list-unsubscribe-post")
_FOLD = "\r\n "
_B64_LINE = 72  # b= folded to keep header lines under 78 characters (RFC 5322 §2.1.1)
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _h_tag(names: list[str]) -> str:
    # Folded between names (FWS is allowed around ":", RFC 6376 §3.5), lines under 78.
    lines, line = [], "h="
    for index, name in enumerate(names):
        piece = name + (":" if index + 1 < len(names) else ";")
        if len(line) + len(piece) > 74:
            lines.append(line)
            line = ""
        line += piece
    return _FOLD.join([*lines, line])


@dataclass(frozen=True)
class _Key:
    # One signing key: the algorithm, its selector and the loaded key object.
    algorithm: str
    selector: str
    key: object = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        if self.algorithm == "rsa-sha256":
            return self.key.sign(data, _PKCS1, _SHA256)
        # RFC 8463 §3: PureEdDSA over the SHA-256 hash of the canonical data.
        return self.key.sign(hashlib.sha256(data).digest())


class PreparedHead:
    """A message template's signed headers, prepared once for every message made from it.

    ``head`` is the header block with placeholders where per-recipient values go; ``slots``
    maps each placeholder to the name of its value. Fixed headers are kept in canonical
    form; a header holding a placeholder is canonicalized per message, once filled.
    """

    def __init__(self, head: bytes, slots: Mapping[bytes, str]):
        fields = header_fields(head)
        present = {name.strip().lower().decode("ascii", "replace") for name, _ in fields}
        self.names = [n for n in SIGNED_HEADERS if n in present]
        self.names += [n for n in OVERSIGNED_HEADERS if n in present]
        self.slots = dict(slots)
        self.parts: list[bytes | tuple[bytes, bytes]] = []
        for name, value in pick_headers(fields, self.names):
            if any(placeholder in value for placeholder in self.slots):
                self.parts.append((name, value))
            else:
                self.parts.append(relaxed_header(name, value))
        # Per key: the DKIM-Signature's text before and after t=, filled in by the signer.
        self.around_time: list[tuple[bytes, bytes]] = []

    def canonical(self, fills: Mapping[str, bytes]) -> bytes:
        """Return the selected headers in canonical form with ``fills`` (slot name -> bytes)."""
        out = []
        for part in self.parts:
            if part.__class__ is bytes:
                out.append(part)
                continue
            name, value = part
            for placeholder, slot in self.slots.items():
                if placeholder in value:
                    value = value.replace(placeholder, fills[slot])
            out.append(relaxed_header(name, value))
        return b"".join(out)


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for ``domain``: rsa-sha256 with ``selector`` and ``private_key`` (PEM),
    and ed25519-sha256 with ``ed25519_selector`` and ``ed25519_key`` when those are given.

    The keys are loaded when the signer is made (DkimConfigError if one is not of its
    kind), never per message. Holds no mutable state: safe to share between threads.
    """

    domain: str
    selector: str
    private_key: bytes = field(repr=False)
    ed25519_selector: str = ""
    ed25519_key: bytes = field(default=b"", repr=False)
    _keys: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        keys = [_Key("rsa-sha256", self.selector, load_rsa(self.private_key))]
        if self.ed25519_key:
            ed_key = load_ed25519(self.ed25519_key)
            keys.append(_Key("ed25519-sha256", self.ed25519_selector, ed_key))
        object.__setattr__(self, "_keys", tuple(keys))

    def prepare(self, head: bytes, slots: Mapping[bytes, str] | None = None) -> PreparedHead:
        """Prepare the header block ``head`` once: h=, fixed headers' canonical form, and
        the fixed text of each DKIM-Signature. ``slots``: placeholder bytes -> slot name."""
        prepared = PreparedHead(head, slots or {})
        h_tag = _h_tag(prepared.names)
        for key in self._keys:
            before = (
                f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed; d={self.domain};"
                f"{_FOLD}s={key.selector}; t="
            )
            prepared.around_time.append((before.encode("ascii"), f";{_FOLD}{h_tag}".encode()))
        return prepared

    def signature(self, message: bytes) -> bytes:
        """Return the ``DKIM-Signature: ...`` header(s) (CRLF-terminated) for ``message``.

        ``message``: the whole message, CRLF line ends, not dot-stuffed. RSA's comes first.
        """
        head, body = _split(message)
        return self.signature_prepared(self.prepare(head), {}, body_hash(body))

    def signature_prepared(
        self, prepared: PreparedHead, fills: Mapping[str, bytes], bh: bytes
    ) -> bytes:
        """Return the DKIM-Signature header(s) for a message made from ``prepared``.

        ``fills``: each slot's value in this message; ``bh``: its body hash, base64 bytes
        (:func:`canonical.body_hash`). t= is ``clock.now()`` in whole seconds (RFC 6376 §3.5).
        """
        headers = prepared.canonical(fills)
        now = str(int(clock.now().timestamp())).encode("ascii")
        out = []
        for key, (before, after) in zip(self._keys, prepared.around_time, strict=True):
            unsigned = before + now + after + b"\r\n bh=" + bh + b";\r\n b="
            name, value = unsigned.split(b":", 1)
            # The signature header is hashed last, b= empty and without its CRLF (§3.7).
            data = headers + relaxed_header(name, value)[:-2]
            signature = base64.b64encode(key.sign(data))
            folded = b"\r\n ".join(
                signature[i : i + _B64_LINE] for i in range(0, len(signature), _B64_LINE)
            )
            out.append(unsigned + folded + b"\r\n")
        return b"".join(out)

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with its DKIM-Signature header(s) put first."""
        return self.signature(message) + message


def _split(message: bytes) -> tuple[bytes, bytes]:
    # The header block keeps its last CRLF; the body starts after the empty line.
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[: end + 2], message[end + 4 :]


def signer_from_config(config: Mapping) -> DkimSigner | None:
    """Return a signer from the MAILER_DKIM_* settings, or None if none is set.

    RSA: MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR, MAILER_DKIM_PRIVATE_KEY (all or none).
    Ed25519, a second signature: MAILER_DKIM_ED25519_SELECTOR and
    MAILER_DKIM_ED25519_PRIVATE_KEY (both or none, and only with the RSA settings).

    Raises:
        DkimConfigError: only some are set, a key file cannot be read, or it holds no RSA
            key of at least 1024 bits (no Ed25519 key, for the Ed25519 file).
    """
    domain = config.get("MAILER_DKIM_DOMAIN", "").strip().lower()
    selector = config.get("MAILER_DKIM_SELECTOR", "").strip()
    key_path = config.get("MAILER_DKIM_PRIVATE_KEY", "").strip()
    ed_selector = config.get("MAILER_DKIM_ED25519_SELECTOR", "").strip()
    ed_path = config.get("MAILER_DKIM_ED25519_PRIVATE_KEY", "").strip()
    _all_or_none(
        "DKIM needs all three of",
        {
            "MAILER_DKIM_DOMAIN": domain,
            "MAILER_DKIM_SELECTOR": selector,
            "MAILER_DKIM_PRIVATE_KEY": key_path,
        },
        "a PEM file",
    )
    _all_or_none(
        "An Ed25519 signature needs both",
        {"MAILER_DKIM_ED25519_SELECTOR": ed_selector, "MAILER_DKIM_ED25519_PRIVATE_KEY": ed_path},
        "an Ed25519 key file",
    )
    if not domain:
        if ed_selector:
            # Receivers that do not know Ed25519 would see no signature they can check.
            raise DkimConfigError(
                "MAILER_DKIM_ED25519_* adds a second signature to the RSA one: set "
                "MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR and MAILER_DKIM_PRIVATE_KEY too"
            )
        return None
    pem = read_private_key(key_path)
    key_bits(pem)
    ed_key = b""
    if ed_path:
        ed_key = read_private_key(ed_path, "MAILER_DKIM_ED25519_PRIVATE_KEY")
    return DkimSigner(domain, selector, pem, ed_selector, ed_key)


def _all_or_none(lead: str, settings: dict[str, str], what: str) -> None:
    if all(settings.values()) or not any(settings.values()):
        return
    # Never quietly unsigned: an operator who set some of them meant to sign.
    *first, last = settings
    missing = " and ".join(name for name, value in settings.items() if not value)
    raise DkimConfigError(
        f"{lead} {', '.join(first)} and {last} ({what}), {missing} not set; set them all or none"
    )
