"""DKIM keys: reading and checking them, making new ones, and the DNS records to publish.

Two kinds (RFC 6376 §3.3, RFC 8463): RSA (rsa-sha256, at least 1024 bits, RFC 8301 §3.2;
2048 made by ``dkim keygen``) and Ed25519 (ed25519-sha256, a second signature). Keys are
loaded with ``cryptography`` (OpenSSL) once per process and key file; dkimpy is imported
only by :func:`verify`, the independent check behind ``deliverability check``.
"""

import base64
import binascii
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

RECOMMENDED_BITS = 2048
MINIMUM_BITS = 1024
RSA = "rsa"
ED25519 = "ed25519"


class DkimConfigError(ValueError):
    """The DKIM settings are incomplete or the key cannot be used; the message says which."""


def read_private_key(path: str | os.PathLike, setting: str = "MAILER_DKIM_PRIVATE_KEY") -> bytes:
    """Return the bytes of the key file at ``path``; DkimConfigError naming ``setting`` if not."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DkimConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def _load_pem(pem: bytes, setting: str):
    try:
        # OpenSSL's full RSA key check takes about 0.1 s, paid by every command and sender
        # process that starts; load_rsa checks the key with one signature instead.
        return serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as exc:
        raise DkimConfigError(f"{setting} is not an unencrypted PEM key: {exc}") from exc


@lru_cache(maxsize=8)
def load_rsa(pem: bytes, setting: str = "MAILER_DKIM_PRIVATE_KEY") -> rsa.RSAPrivateKey:
    """Return the RSA key in ``pem``, loaded once per process; DkimConfigError naming
    ``setting`` when it is not one, or when a signature made with it does not verify with
    its public half (a damaged key would sign every message with a useless signature)."""
    key = _load_pem(pem, setting)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimConfigError(f"{setting} must be an RSA key (rsa-sha256)")
    probe = b"DKIM key check"
    try:
        signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise DkimConfigError(
            f"{setting}: the RSA key is damaged (its signatures do not verify)"
        ) from exc
    return key


@lru_cache(maxsize=8)
def load_ed25519(
    data: bytes, setting: str = "MAILER_DKIM_ED25519_PRIVATE_KEY"
) -> ed25519.Ed25519PrivateKey:
    """Return the Ed25519 key in ``data``: a PEM file (``dkim keygen --ed25519`` writes PKCS#8)
    or the one-line base64 seed dkimpy's ``dknewkey`` writes; DkimConfigError if neither."""
    if b"-----BEGIN" not in data:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != 32:
            raise DkimConfigError(
                f"{setting} must be an Ed25519 key: PEM, or the 32-octet seed in base64"
            )
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    key = _load_pem(data, setting)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimConfigError(f"{setting} must be an Ed25519 key (ed25519-sha256, RFC 8463)")
    return key


def key_bits(pem: bytes) -> int:
    """Return the RSA key size in bits; DkimConfigError below 1024 (RFC 8301 §3.2)."""
    bits = load_rsa(pem).key_size
    if bits < MINIMUM_BITS:
        raise DkimConfigError(f"the DKIM key has {bits} bits; RFC 8301 needs at least 1024")
    return bits


def public_key_b64(pem: bytes) -> str:
    """Return the RSA public half as base64 DER SubjectPublicKeyInfo: the DNS record's p=."""
    der = (
        load_rsa(pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode("ascii")


def ed25519_public_b64(data: bytes) -> str:
    """Return the Ed25519 public key, its 32 raw octets in base64: p= (RFC 8463 §4.2)."""
    raw = (
        load_ed25519(data)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode("ascii")


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


def generate_ed25519_key() -> bytes:
    """Return a new Ed25519 private key as PKCS#8 PEM bytes (``BEGIN PRIVATE KEY``)."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
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


def txt_record_value(pem: bytes, kind: str = RSA) -> str:
    """Return the TXT data ``v=DKIM1; k=rsa|ed25519; p=...`` (RFC 6376 §3.6.1, RFC 8463)."""
    public = ed25519_public_b64(pem) if kind == ED25519 else public_key_b64(pem)
    return f"v=DKIM1; k={kind}; p={public}"


def dns_record(selector: str, domain: str, pem: bytes, kind: str = RSA) -> str:
    """Return the zone-file line to publish, split in quoted strings of <= 255 characters.

    A TXT record's character-strings are at most 255 octets each (RFC 1035 §3.3.14);
    receivers join them (RFC 6376 §3.6.2.2).
    """
    value = txt_record_value(pem, kind)
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{selector}._domainkey.{domain}. IN TXT {quoted}"


def dns_answer_from_key(
    selector: str, domain: str, pem: bytes, kind: str = RSA
) -> Callable[..., bytes | None]:
    """Return a dkimpy ``dnsfunc`` that answers the selector's TXT query from our own key.

    Used to verify a sample signature offline: it says what DNS would say once the record
    from :func:`dns_record` is published, and None for any other name.
    """
    wanted = f"{selector}._domainkey.{domain}.".lower()
    value = txt_record_value(pem, kind).encode("ascii")

    def answer_from_configured_key(name: bytes, timeout: float = 5) -> bytes | None:
        asked = name.decode("ascii").lower()
        return value if asked.rstrip(".") + "." == wanted else None

    return answer_from_configured_key


def verify(message: bytes, dnsfunc: Callable[..., bytes | None], index: int = 0) -> bool:
    """Return True when the ``index``-th DKIM-Signature of ``message`` verifies (dkimpy).

    dkimpy is an independent implementation of RFC 6376 (ours signs); imported here only,
    so that it costs nothing to the commands that do not verify.
    """
    import dkim  # noqa: PLC0415 - a slow import, needed by `deliverability check` only

    return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
