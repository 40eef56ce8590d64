"""Score an issue with SpamAssassin, offline, before it is sent.

A sample message (multipart/alternative, the headers every digest carries) is built with the
standard library and piped through ``spamassassin -t -L`` (test mode, local tests only: no
DNS, no network). Bayes is switched off so the score does not depend on this machine's
training. Scores are cached per content, so the admin pages can call this on every view.
"""

import hashlib
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from .. import clock
from ..models import Issue
from .render import (
    PREFERENCES_URL_MARKER,
    RECIPIENT_MARKER,
    UNSUBSCRIBE_URL_MARKER,
    preferences_url_of,
)

SPAMASSASSIN_ARGS = ("-t", "-L", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0")
TIMEOUT_SECONDS = 120.0
_STATUS = re.compile(r"score=(-?\d+(?:\.\d+)?)\s+required=(-?\d+(?:\.\d+)?)(?:\s+tests=(\S*))?")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")
_cache: dict[str, "SpamReport"] = {}
_CACHE_SIZE = 32


@dataclass(frozen=True)
class SpamRule:
    """One SpamAssassin rule that fired: its name, points and description."""

    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamReport:
    """SpamAssassin's verdict on a sample of an issue: total score and the rules that fired."""

    score: float
    required: float
    rules: tuple[SpamRule, ...]

    def describe(self) -> str:
        """Return e.g. ``"1.0 (FONT_INVIS_MSGID 1.0, HTML_MESSAGE 0.0)"``."""
        fired = ", ".join(f"{rule.name} {rule.points:g}" for rule in self.rules)
        return f"{self.score:g} ({fired or 'no rules fired'})"


class SpamCheckError(RuntimeError):
    """SpamAssassin could not be run or its answer could not be read."""


def spamassassin_path() -> str | None:
    """Return the path of the ``spamassassin`` program, or None when it is not installed."""
    return shutil.which("spamassassin")


def sample_message(issue: Issue, config: Mapping) -> bytes:
    """Return a sample digest message for ``issue`` (RFC 5322 bytes) with the markers filled.

    Headers follow the delivery room's set (From, To, Subject, Date, Message-ID, List-Id,
    List-Unsubscribe (RFC 2369) and List-Unsubscribe-Post (RFC 8058)); this is only a sample
    for scoring, the real messages are built by ``mailer.delivery.message``.
    """
    base_url = config["MAILER_BASE_URL"].rstrip("/")
    domain = parseaddr(config["MAILER_FROM"])[1].rpartition("@")[2] or "localhost"
    unsubscribe = f"{base_url}/unsubscribe/sample-token"
    recipient = f"reader@{domain}"
    message = EmailMessage()
    message["From"] = config["MAILER_FROM"]
    message["To"] = recipient
    message["Subject"] = issue.subject
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = make_msgid(domain=domain)
    message["List-Id"] = config.get("MAILER_LIST_ID") or f"<weekly.{domain}>"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    fill = {
        UNSUBSCRIBE_URL_MARKER: unsubscribe,
        RECIPIENT_MARKER: recipient,
        PREFERENCES_URL_MARKER: preferences_url_of(unsubscribe),
    }
    message.set_content(_fill(issue.text, fill))
    message.add_alternative(_fill(issue.html, fill), subtype="html")
    return message.as_bytes(policy=policy.SMTP)


def spam_score(issue: Issue, config: Mapping) -> SpamReport:
    """Score a sample of ``issue`` with ``spamassassin -t -L`` (offline) and return the report.

    Raises:
        SpamCheckError: spamassassin is not installed, failed, timed out, or printed no
            X-Spam-Status header.
    """
    key = hashlib.sha256(
        "\0".join((issue.subject, issue.html, issue.text, config["MAILER_FROM"])).encode()
    ).hexdigest()
    if key not in _cache:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = parse_report(_run(sample_message(issue, config)))
    return _cache[key]


def _run(message: bytes) -> bytes:
    program = spamassassin_path()
    if program is None:
        raise SpamCheckError("spamassassin is not installed (Debian package 'spamassassin')")
    try:
        done = subprocess.run(
            [program, *SPAMASSASSIN_ARGS],
            input=message,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpamCheckError(f"spamassassin could not run: {exc}") from exc
    if done.returncode != 0:
        raise SpamCheckError(f"spamassassin failed: {done.stderr.decode(errors='replace')[:500]}")
    return done.stdout


def parse_report(output: bytes) -> SpamReport:
    """Read the score, the threshold and the fired rules from ``spamassassin -t`` output."""
    status = message_from_bytes(output, policy=policy.compat32).get("X-Spam-Status", "")
    # The header is folded after a comma of the tests= list: join it back without spaces.
    match = _STATUS.search(re.sub(r",\s+", ",", " ".join(str(status).split())))
    if match is None:
        raise SpamCheckError("spamassassin printed no X-Spam-Status header with a score")
    names = [name for name in (match.group(3) or "").split(",") if name and name != "none"]
    table = _rule_table(output.decode("utf-8", errors="replace"))
    rules = tuple(table.get(name, SpamRule(name, 0.0, "")) for name in names)
    return SpamReport(float(match.group(1)), float(match.group(2)), rules)


def _rule_table(text: str) -> dict[str, SpamRule]:
    """Parse the "pts rule name description" table that test mode appends."""
    _, _, table = text.rpartition("pts rule name")
    rules = {}
    for line in table.splitlines()[2:]:
        match = _RULE.match(line)
        if match:
            points, name, description = match.groups()
            rules[name] = SpamRule(name, float(points), description.strip())
    return rules


def _fill(text: str, values: Mapping[str, str]) -> str:
    for marker, value in values.items():
        text = text.replace(marker, value)
    return text
