"""Personalising and DKIM-signing ahead in helper processes, so that signing uses every core.

With DKIM on, the private-key operation (about 0.5 ms for RSA-2048) is most of a message's
CPU time. On SQLite there is one sender process (the database has one writer), so without
help one core signs while the other idles. :class:`SigningPool` lets helper processes
(``MAILER_SIGNING_PROCESSES``, spawned, each compiling the issue once) make the unsubscribe
token and the signed message for the rows the sender will send next; the sender keeps the
database, the pre-send check and the SMTP connections. A row that is skipped after all only
wasted a signature. On PostgreSQL the sender processes already split the work.

Starting helpers costs about a second of their own start-up: a small send never waits for
it. The pool is made only after ``SIGN_HERE_FIRST`` messages (see ``Picker``), and until a
helper has delivered its first message the sender signs the rows itself.
"""

import multiprocessing
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace

from ...subscriptions.tokens import make_unsubscribe_token, unsubscribe_url
from .. import message
from .claims import Claimed

AHEAD = 64  # rows personalised ahead of the one being sent (about 30 ms of signing)
SIGN_HERE_FIRST = 256  # messages signed in the sender before helpers are started
_compiled = None  # in a helper process: the issue compiled once
_secret = ""
_base_url = ""


def _start_helper(source: dict, config: dict) -> None:
    global _compiled, _secret, _base_url
    _compiled = message.compile_issue(SimpleNamespace(**source), config)
    _secret = config["SECRET_KEY"]
    _base_url = config["MAILER_BASE_URL"].rstrip("/")


def _personalise(subscriber_id: int, version: int, email: str) -> tuple[bool, object]:
    # (True, DATA parts) or (False, why it cannot be written): as Picker._personalise.
    url = unsubscribe_url(_base_url, make_unsubscribe_token(_secret, subscriber_id, version))
    try:
        return True, _compiled.personalise_parts(subscriber_id, email, url)
    except ValueError as exc:
        return False, str(exc)


def _ready() -> bool:
    return _compiled is not None


def wanted(config: Mapping, compiled, dialect: str) -> int:
    """How many helper processes to use: MAILER_SIGNING_PROCESSES when the issue is signed
    and the database is SQLite (its one sender process), else 0. ``compiled``: the issue's
    ``message.CompiledVariants``; an issue with topic variants is signed here (the helpers
    compile one message)."""
    if compiled.signer is None or dialect != "sqlite" or compiled.single is None:
        return 0
    return int(config.get("MAILER_SIGNING_PROCESSES", 0))


class SigningPool:
    """Helper processes that personalise and sign the next rows of one issue.

    Args:
        compiled: the issue's ``message.CompiledIssue`` (its ``source`` is sent to the
            helpers, which compile it again). config: the app config. processes: how many.
    """

    def __init__(self, compiled, config: Mapping, processes: int):
        plain = {k: v for k, v in config.items() if k.startswith("MAILER_") or k == "SECRET_KEY"}
        self._pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),  # no copy of our sockets
            initializer=_start_helper,
            initargs=(compiled.source, plain),
        )
        self._ahead: dict[int, Future] = {}
        self.warm = False  # a helper has delivered a message

    def wait_started(self) -> None:
        """Wait until a helper has compiled the issue; from then on :meth:`result` waits
        for the helpers instead of leaving a row to the sender."""
        self._pool.submit(_ready).result()
        self.warm = True

    def prepare(self, rows: Iterable[Claimed]) -> None:
        """Start personalising ``rows`` (those not started yet)."""
        for row in rows:
            if row.delivery_id not in self._ahead:
                self._ahead[row.delivery_id] = self._pool.submit(
                    _personalise, row.subscriber_id, row.version, row.email
                )

    def result(self, row: Claimed) -> tuple[bool, object] | None:
        """Return ``row``'s message as :func:`_personalise` gives it, waiting for it once the
        helpers run; None while they are still starting (the sender makes it itself).

        Raises what a helper raised other than ValueError (e.g. a broken pool).
        """
        self.prepare([row])
        future = self._ahead.pop(row.delivery_id)
        if not self.warm and not future.done():
            future.cancel()
            return None
        self.warm = True
        return future.result()

    def close(self) -> None:
        """Drop what was prepared and not sent; stop the helpers."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
