"""DKIM signing with dkimpy (RFC 6376), key generation, and the DNS record to publish.

A signer is made once per compiled issue (the key file is read then, not per message); each
message is signed with rsa-sha256 and relaxed/relaxed canonicalization, and h= covers the
headers RFC 8058 §4 asks for (List-Unsubscribe and List-Unsubscribe-Post) besides From, To,
Subject, Date, Message-ID, List-Id, MIME-Version and Content-Type.
"""

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
RECOMMENDED_BITS = 2048
MINIMUM_BITS = 1024


class DkimConfigError(ValueError):
    """The DKIM settings are incomplete or the key cannot be used; the message says which."""


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for ``domain`` with ``selector`` and an RSA key (PEM bytes)."""

    domain: str
    selector: str
    private_key: bytes = field(repr=False)

    def signature(self, message: bytes) -> bytes:
        """Return the ``DKIM-Signature: ...`` header (CRLF-terminated) for ``message``.

        Raises:
            dkim.DKIMException: the message or key is malformed.
        """
        names = _present_headers(message)
        include = [n for n in SIGNED_HEADERS if n in names]
        include += [n for n in OVERSIGNED_HEADERS if n in names]
        return dkim.sign(
            message,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[n.encode("ascii") for n in include],
            linesep=b"\r\n",
        )

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with its DKIM-Signature header put first."""
        return self.signature(message) + message


def _present_headers(message: bytes) -> set[str]:
    head = message.split(b"\r\n\r\n", 1)[0]
    names = set()
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t") and b":" in line:
            names.add(line.split(b":", 1)[0].strip().lower().decode("ascii", "replace"))
    return names


def signer_from_config(config: Mapping) -> DkimSigner | None:
    """Return a signer from MAILER_DKIM_DOMAIN/SELECTOR/PRIVATE_KEY, or None if none is set.

    Raises:
        DkimConfigError: only some of the three are set, the key file cannot be read, or it
            holds no RSA key of at least 1024 bits.
    """
    domain = config.get("MAILER_DKIM_DOMAIN", "").strip().lower()
    selector = config.get("MAILER_DKIM_SELECTOR", "").strip()
    key_path = config.get("MAILER_DKIM_PRIVATE_KEY", "").strip()
    if not (domain or selector or key_path):
        return None
    if not (domain and selector and key_path):
        # Never quietly unsigned: an operator who set two of the three meant to sign.
        settings = {
            "MAILER_DKIM_DOMAIN": domain,
            "MAILER_DKIM_SELECTOR": selector,
            "MAILER_DKIM_PRIVATE_KEY": key_path,
        }
        missing = " and ".join(name for name, value in settings.items() if not value)
        raise DkimConfigError(
            f"DKIM needs all three of MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR and "
            f"MAILER_DKIM_PRIVATE_KEY (a PEM file), {missing} not set; set them all or none"
        )
    pem = read_private_key(key_path)
    _checked_bits(pem)
    return DkimSigner(domain=domain, selector=selector, private_key=pem)


def read_private_key(path: str | os.PathLike) -> bytes:
    """Return the PEM bytes of the key at ``path``; DkimConfigError naming the file if not."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DkimConfigError(
            f"MAILER_DKIM_PRIVATE_KEY: cannot read {path}: {exc.strerror}"
        ) from exc


def _load(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimConfigError(
            f"MAILER_DKIM_PRIVATE_KEY is not an unencrypted PEM key: {exc}"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimConfigError("MAILER_DKIM_PRIVATE_KEY must be an RSA key (rsa-sha256)")
    return key


def key_bits(pem: bytes) -> int:
    """Return the RSA key size in bits; DkimConfigError below 1024 (RFC 8301 §3.2)."""
    bits = _load(pem).key_size
    if bits < MINIMUM_BITS:
        raise DkimConfigError(f"the DKIM key has {bits} bits; RFC 8301 needs at least 1024")
    return bits


@lru_cache(maxsize=8)
def _checked_bits(pem: bytes) -> int:
    # OpenSSL's RSA key check takes about 0.1 s; a confirmation mail is built per signup,
    # so each distinct key is checked once per process.
    return key_bits(pem)


def public_key_b64(pem: bytes) -> str:
    """Return the public half as base64 DER SubjectPublicKeyInfo: the p= of the DNS record."""
    der = (
        _load(pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode("ascii")


def generate_private_key(bits: int = RECOMMENDED_BITS) -> bytes:
    """Return a new RSA private key (public exponent 65537) as PKCS#1 PEM bytes.

    PKCS#1 (``BEGIN RSA PRIVATE KEY``) is the form dkimpy, OpenDKIM and rspamd all read.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def write_private_key(path: str | os.PathLike, pem: bytes) -> None:
    """Write ``pem`` to a new file readable by its owner only (0600).

    Raises:
        FileExistsError: the file exists (an existing key is never overwritten).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def txt_record_value(pem: bytes) -> str:
    """Return the TXT data ``v=DKIM1; k=rsa; p=...`` (RFC 6376 §3.6.1)."""
    return f"v=DKIM1; k=rsa; p={public_key_b64(pem)}"


def dns_record(selector: str, domain: str, pem: bytes) -> str:
    """Return the zone-file line to publish, split in quoted strings of <= 255 characters.

    A TXT record's character-strings are at most 255 octets each (RFC 1035 §3.3.14);
    receivers join them (RFC 6376 §3.6.2.2).
    """
    value = txt_record_value(pem)
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{selector}._domainkey.{domain}. IN TXT {quoted}"


def dns_answer_from_key(selector: str, domain: str, pem: bytes) -> Callable[..., bytes | None]:
    """Return a dkimpy ``dnsfunc`` that answers the selector's TXT query from our own key.

    Used to verify a sample signature offline: it says what DNS would say once the record
    from :func:`dns_record` is published, and None for any other name.
    """
    wanted = f"{selector}._domainkey.{domain}.".lower()
    value = txt_record_value(pem).encode("ascii")

    def answer_from_configured_key(name: bytes, timeout: float = 5) -> bytes | None:
        asked = name.decode("ascii").lower()
        return value if asked.rstrip(".") + "." == wanted else None

    return answer_from_configured_key


def verify(message: bytes, dnsfunc: Callable[..., bytes | None]) -> bool:
    """Return True when the first DKIM-Signature of ``message`` verifies (dkimpy)."""
    return bool(dkim.verify(message, dnsfunc=dnsfunc))
