"""One sender: a single thread driving several relay connections, batch by batch.

Why one thread and not one per connection: measured on the benchmark machine, threads cost
more in lock hand-offs and context switches than the work they overlap; one thread with
non-blocking sockets (:mod:`selectors`) keeps every connection busy and the CPU on the work.

Per message: the row is re-read right before its envelope goes out (the issue's status, so
that pause and cancel take effect within a message or two; the subscriber's status, so that
someone who left after enqueueing is skipped; the row's own lease). With PIPELINING the next
message's envelope travels with the current message's content (RFC 2920 §3.1); its content
waits for the relay's 354. Each outcome is written right after the relay's reply
(:mod:`.statements`, :mod:`..ledger`), before that connection carries another message; the
sent marks of replies that arrive in one wakeup are written together, at its end, in one
round trip (and always before any more content goes out).
"""

import logging
import selectors
import time
from collections.abc import Callable, Mapping

from sqlalchemy.engine import Engine

from .. import ledger
from ..bounces.verp import DELIVERY, Verp
from ..errors import RecipientNotSupported, RelayError
from ..ledger import Tally
from ..smtp.channel import Channel
from ..smtp.framing import envelope_commands
from ..smtp.settings import RelaySettings, SmtpReply, envelope_refusal
from . import claims, signing
from .batches import Job, Rows
from .outcomes import Outcomes
from .picker import Picker
from .statements import HotPath
from .throttle import Throttle

log = logging.getLogger(__name__)

__all__ = ["IssueSender", "Tally"]


class IssueSender:
    """Sends due deliveries of one issue over ``connections`` relay connections, one thread.

    Args:
        engine: the SQLAlchemy engine (one autocommit connection is taken from it).
        config: the app config. issue_id: Issue.id. compiled: its ``message.CompiledVariants``.
        connections: how many relay connections to keep busy.
        rate: messages/s for this sender as a whole (0 = unlimited).
        stop: an Event; once set, no new message starts and :meth:`run` returns when the
            messages on the wire are answered.
        slot: this sender's number (part of its claimer name).
    """

    def __init__(self, engine: Engine, config: Mapping, issue_id: int, compiled, *,
                 connections: int, rate: float, stop, slot: int = 0):  # fmt: skip
        self.engine = engine
        self.compiled = compiled
        self.stop = stop
        self.tally = Tally()
        self.rules = ledger.Rules.from_config(config)
        self.settings = RelaySettings.from_config(config)
        self.verp = Verp(config)
        self.channels = [Channel(self.settings, index) for index in range(max(1, connections))]
        self.throttle = Throttle(rate)
        self.rows = Rows(issue_id, claims.worker_id(slot), config)
        self.config = config
        self.stopping = False
        self._selector = selectors.DefaultSelector()

    def run(self, tick: Callable[[], None] | None = None, every: float = 0.25) -> Tally:
        """Send until nothing is due, the issue stops sending, or ``stop``; return the counts.

        ``tick`` is called about every ``every`` seconds (progress reports, checkpoints).
        Ctrl-C stops starting messages, lets the ones on the wire finish, then re-raises.
        """
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.hot = HotPath(self.conn)
        self.outcomes = Outcomes(
            self.conn, self.hot, self.rules, self.throttle, self.rows, self.tally
        )
        helpers = signing.wanted(self.config, self.compiled, self.engine.dialect.name)
        self.picker = Picker(
            self.rows, self.hot, self.outcomes, self.compiled, self.config,
            self._signing_pool(helpers) if helpers else None,
        )  # fmt: skip
        interrupted = False
        try:
            interrupted = self._loop(tick, every)
        finally:
            self._shut_down()
        if interrupted:
            raise KeyboardInterrupt
        return self.tally

    def _loop(self, tick, every: float) -> bool:
        interrupted = False
        next_tick = time.monotonic() + every
        while True:
            self.stopping = self.stopping or self.stop.is_set()
            started = False
            for channel in self.channels:
                if channel.idle and not self.stopping:
                    started = self._start(channel) or started
            busy = [channel for channel in self.channels if not channel.idle]
            if not busy and not started:
                return interrupted
            if not busy:
                continue  # e.g. the relay refused the connection: try the next message
            try:
                self._wait(busy, every)
            except KeyboardInterrupt:
                interrupted, self.stopping = True, True
            if time.monotonic() >= next_tick:
                self.rows.renew_if_due(self.conn, self._on_wire())
                if tick is not None:
                    tick()
                next_tick = time.monotonic() + every

    def _shut_down(self) -> None:
        try:
            self.hot.flush()
            self.rows.release(self.conn, self._on_wire())
        finally:
            for channel in self.channels:
                self._forget(channel)
                channel.close(polite=True)
            self._selector.close()
            self.hot.close()
            self.conn.close()
            pool = getattr(getattr(self, "picker", None), "signing", None)
            if pool is not None:
                pool.close()

    def _signing_pool(self, helpers: int):
        return lambda: signing.SigningPool(self.compiled.single, self.config, helpers)

    def _on_wire(self) -> list[int]:
        return [job.row.delivery_id for c in self.channels for _k, job in c.expect if job]

    # -- starting messages -------------------------------------------------------------

    def _start(self, channel: Channel) -> bool:
        """Start the next message on an idle channel; False when there is none to start."""
        job = self._next_job()
        if job is None:
            return False
        if not channel.is_open:
            try:
                channel.open()
            except RelayError as exc:
                self._relay_failure(job, exc)
                return True
            self._selector.register(channel.sock, selectors.EVENT_READ, channel)
        commands = self._commands(job, channel)
        if commands is None:
            return True
        self.throttle.wait()
        try:
            if channel.pipelining:
                channel.write(commands, ("MAIL", job), ("RCPT", job), ("DATA", job))
            else:
                job.commands = commands[1:]
                channel.write(commands[:1], ("MAIL", job))
        except RelayError as exc:
            self._broken(channel, exc)
        return True

    def _next_job(self, current: int = 0) -> Job | None:
        """The next message, checked and personalised (``current``: messages being handled
        right now that are not on the wire yet, for the hourly cap)."""
        job = self.picker.next(self.conn, len(self._on_wire()) + current)
        self.stopping = self.stopping or self.picker.stopped
        return job

    def _commands(self, job: Job, channel: Channel) -> list[bytes] | None:
        try:
            sender = self.verp.sender(DELIVERY, job.row.delivery_id)
            return envelope_commands(sender, job.row.email, channel.smtputf8)
        except RecipientNotSupported as exc:
            self.outcomes.not_sendable(job.row, str(exc))
            return None

    # -- the event loop ----------------------------------------------------------------

    def _wait(self, busy: list[Channel], longest: float) -> None:
        now = time.monotonic()
        deadlines = [channel.deadline for channel in busy if channel.expect]
        timeout = max(0.0, min(min(deadlines, default=now + longest) - now, longest))
        for channel in busy:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if channel.out else 0)
            if self._selector.get_key(channel.sock).events != events:
                self._selector.modify(channel.sock, events, channel)
        for key, mask in self._selector.select(timeout):
            self._serve(key.data, mask)
        self.hot.flush()  # the sent marks of the replies that arrived together
        now = time.monotonic()
        for channel in busy:
            if channel.is_open and channel.expect and now >= channel.deadline:
                timeout_s = self.settings.timeout
                self._broken(channel, RelayError(None, f"relay timed out after {timeout_s:g} s"))

    def _serve(self, channel: Channel, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                channel.flush()
            if mask & selectors.EVENT_READ:
                replies, ended = channel.read_replies()
                for reply in replies:
                    if not channel.is_open:
                        return
                    self._on_reply(channel, reply)
                if ended is not None and channel.is_open:
                    raise ended
        except RelayError as exc:
            self._broken(channel, exc)

    def _on_reply(self, channel: Channel, reply: SmtpReply) -> None:
        if not channel.expect:
            return  # nothing asked: ignore (e.g. a late reply after a reset)
        kind, job = channel.expect[0]
        if reply.code == 421:  # "closing the channel" (RFC 5321 §3.8)
            self._broken(channel, RelayError(421, reply.text))
            return
        channel.expect.popleft()
        if kind in ("MAIL", "RCPT"):
            self._on_envelope(channel, kind, job, reply)
        elif kind == "DATA":
            self._on_data(channel, job, reply)
        elif kind == "END":
            self._on_end(channel, job, reply)

    def _on_end(self, channel: Channel, job: Job, reply: SmtpReply) -> None:
        self._record(job, reply)  # committed before this channel's next content
        channel.finished += 1
        if channel.finished >= self.settings.max_messages and channel.idle:
            self._forget(channel)
            channel.close(polite=True)

    def _on_envelope(self, channel: Channel, kind: str, job: Job, reply: SmtpReply) -> None:
        setattr(job, kind.lower(), reply)
        if channel.pipelining:
            return
        if not reply.ok:
            self._envelope_refused(channel, job, None)
            return
        command, job.commands = job.commands[0], job.commands[1:]
        channel.write([command], ("RCPT", job) if kind == "MAIL" else ("DATA", job))

    def _on_data(self, channel: Channel, job: Job, reply: SmtpReply) -> None:
        if reply.code != 354 or not (job.mail.ok and job.rcpt.ok):
            self._envelope_refused(channel, job, reply)
            return
        self._send_content(channel, job)

    def _send_content(self, channel: Channel, job: Job) -> None:
        # Every accepted message is recorded before more content goes out, so a crash
        # re-sends at most the messages in flight (one per connection).
        self.hot.flush()
        parts, expected = job.body, [("END", job)]
        job.body = None
        following = self._pipelined_next(channel)
        if following is not None:
            commands = self._commands(following, channel)
            if commands is not None:
                parts += commands
                expected += [("MAIL", following), ("RCPT", following), ("DATA", following)]
        channel.write(parts, *expected)

    def _pipelined_next(self, channel: Channel) -> Job | None:
        last = channel.finished + 1 >= self.settings.max_messages
        if self.stopping or last or not channel.pipelining:
            return None
        job = self._next_job(current=1)
        if job is not None:
            self.throttle.wait()
        return job

    def _envelope_refused(self, channel: Channel, job: Job, data: SmtpReply | None) -> None:
        if data is not None and data.code == 354:
            # The relay wants content although the envelope failed: end it empty (it has no
            # valid recipient, so nothing is delivered) and reset.
            channel.write([b".\r\nRSET\r\n"], ("SKIP", None), ("RSET", None))
        else:
            channel.write([b"RSET\r\n"], ("RSET", None))
        try:
            refusal = envelope_refusal(job.mail, job.rcpt, data)
        except RelayError as exc:
            self._relay_failure(job, exc)
            return
        self._record(job, refusal)

    def _record(self, job: Job, reply: SmtpReply) -> None:
        self.outcomes.reply(job.row, reply)
        if self.outcomes.pushed_back:  # the relay paused the issue: stop at the next check
            self.outcomes.pushed_back = False
            self.picker.forget_checks()

    def _broken(self, channel: Channel, exc: RelayError) -> None:
        """The connection is gone: the message it was answering for is deferred as a relay
        error; a message whose envelope was only announced goes back to the queue."""
        jobs = list(dict.fromkeys(job for _kind, job in channel.expect if job is not None))
        self._forget(channel)
        channel.close()
        if jobs:
            self._relay_failure(jobs[0], exc)
            for job in reversed(jobs[1:]):
                self.rows.put_back(job.row)

    def _relay_failure(self, job: Job, exc: RelayError) -> None:
        self.outcomes.relay_failure(job.row, exc)
        self.picker.forget_checks()  # that error may have paused the issue: check afresh

    def _forget(self, channel: Channel) -> None:
        if channel.sock is not None and channel.sock in self._selector.get_map():
            self._selector.unregister(channel.sock)
