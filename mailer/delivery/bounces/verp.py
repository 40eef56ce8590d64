"""VERP envelope senders: ``bounces+TOKEN@domain``, one per delivery or transactional mail.

With ``MAILER_BOUNCE_ADDRESS`` set (``bounces@news.example.jp``), each message goes out with
MAIL FROM ``bounces+d123-5f0c9a1b2e@news.example.jp``: ``d`` (a digest Delivery) or ``m`` (a
TransactionalMail), the row id, and a short HMAC-SHA256 tag (40 bits, hex, lower case since
some relays fold the local part's case) keyed by a key derived from ``SECRET_KEY``. A report
sent back to that address names its row; a forged one cannot name another row without the
key. Headers, DKIM and Message-ID are untouched: only the envelope changes (RFC 5321 §4.1.2).
Unset: MAIL FROM is the From address, as before.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr

DELIVERY = "d"
MAIL = "m"
TAG_HEX = 10  # 40 bits: forging one tag takes about 10**12 tries against the live service
_PLAIN = re.compile(r"^[A-Za-z0-9!#$%&'*/=?^_`{|}~.-]{1,40}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
_TOKEN = re.compile(rf"^([dm])([0-9]{{1,19}})-([0-9a-f]{{{TAG_HEX}}})$")


@dataclass(frozen=True)
class VerpRef:
    """What a verified VERP token names: ``kind`` (:data:`DELIVERY` or :data:`MAIL`), ``row_id``."""

    kind: str
    row_id: int


def _key(secret: str) -> bytes:
    # A key of its own, derived from SECRET_KEY, so that no other signed value (a link
    # token) can ever double as a VERP tag.
    return hmac.new(secret.encode(), b"mailer.verp.v1", hashlib.sha256).digest()


def _tag(key: bytes, kind: str, row_id: int) -> str:
    return hmac.new(key, f"{kind}{row_id}".encode(), hashlib.sha256).hexdigest()[:TAG_HEX]


class Verp:
    """Makes and reads VERP addresses for one app config.

    Raises:
        ValueError: ``MAILER_BOUNCE_ADDRESS`` is not a plain ASCII address without ``+``.

    Args:
        config: the app config: ``MAILER_BOUNCE_ADDRESS`` (empty: no VERP), ``MAILER_FROM``
            (the envelope sender without VERP), ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``
            (earlier keys still verify tokens of mail sent before a rotation).
    """

    def __init__(self, config: Mapping):
        self.address = str(config.get("MAILER_BOUNCE_ADDRESS", "") or "").strip()
        self.plain_sender = parseaddr(config["MAILER_FROM"])[1]
        keys = [config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", [])]
        self._keys = [_key(secret) for secret in keys]
        local, _, domain = self.address.rpartition("@")
        if self.address and not (_PLAIN.match(local) and _DOMAIN.match(domain)):
            raise ValueError(
                f"MAILER_BOUNCE_ADDRESS must be one plain ASCII address without '+' "
                f"(e.g. bounces@news.example.jp), got {self.address!r}"
            )
        self._local, self._domain = local, domain

    @property
    def enabled(self) -> bool:
        """True when ``MAILER_BOUNCE_ADDRESS`` is set."""
        return bool(self.address)

    def sender(self, kind: str, row_id: int) -> str:
        """The envelope sender (MAIL FROM) of row ``row_id`` of ``kind``.

        Returns ``bounces+TOKEN@domain`` when VERP is on, else the From address.
        """
        if not self.enabled:
            return self.plain_sender
        return f"{self._local}+{self.token(kind, row_id)}@{self._domain}"

    def token(self, kind: str, row_id: int) -> str:
        """The signed token naming the row: ``d123-<10 hex digits>``."""
        return f"{kind}{int(row_id)}-{_tag(self._keys[0], kind, int(row_id))}"

    def read(self, address: str) -> VerpRef | None:
        """The row a VERP address (or its bare token) names, if its tag verifies; else None.

        Accepts ``bounces+TOKEN@domain`` with any local part before the ``+`` and any case
        (relays may fold it). A wrong tag, a malformed token or no token give None.
        """
        address = (address or "").strip().strip("<>").lower()
        local = address.rpartition("@")[0] if "@" in address else address
        token = local.rpartition("+")[2]
        found = _TOKEN.match(token)
        if found is None:
            return None
        kind, row_id, tag = found.group(1), int(found.group(2)), found.group(3)
        for key in self._keys:
            if hmac.compare_digest(_tag(key, kind, row_id), tag):
                return VerpRef(kind, row_id)
        return None
