"""Outgoing connections of the feed fetcher: where they may go, and a deadline for the whole.

- **Addresses.** A feed's host is resolved here and every address it resolves to is checked
  before connecting; the connection goes to the checked address (so a second DNS answer
  cannot swap in another one: DNS rebinding). Loopback, private (RFC 1918, fc00::/7),
  link-local, shared (100.64/10), multicast, unspecified and reserved addresses are refused
  unless ``allow_private`` (MAILER_FEED_ALLOW_PRIVATE): a feed URL must not reach the
  services of the machine or the network the server runs in (SSRF). Each redirect opens a
  new connection, so it is checked the same way.
- **Deadline.** ``MAILER_FEED_TIMEOUT`` bounds the whole fetch, not each read: every socket
  operation gets at most the time left, and a timer shuts the socket down at the deadline,
  so a server trickling one byte at a time is cut off there.
"""

import ipaddress
import socket
import threading
import time

from .errors import FetchError


class Deadline:
    """A point in time (``time.monotonic``) after which a fetch is given up."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._timers: list[threading.Timer] = []

    def left(self) -> float:
        """Seconds left (at least a millisecond, so a socket never becomes non-blocking)."""
        return max(0.001, self.at - time.monotonic())

    def passed(self) -> bool:
        """True once the deadline is reached."""
        return time.monotonic() >= self.at

    def guard(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline, ending any read or write blocked on it."""
        timer = threading.Timer(self.left(), _shut, args=(sock,))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def cancel(self) -> None:
        """Stop the timers (the fetch is over)."""
        for timer in self._timers:
            timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def refused_address(address: str) -> bool:
    """True when ``address`` (an IP) is not a public unicast address (see the module doc)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def refused_host(host: str, port: int) -> str | None:
    """The first refused address ``host`` resolves to, or None (also when it does not resolve:
    the fetch checks again, and a name may resolve later)."""
    try:
        entries = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return next((e[4][0] for e in entries if refused_address(e[4][0])), None)


def check_host(host: str, port: int, *, allow_private: bool) -> list[tuple]:
    """Resolve ``host`` and return its getaddrinfo entries, all of them allowed.

    Raises:
        FetchError: the name does not resolve, or an address is refused; the message names
            the host and the setting, never what is listening there.
    """
    try:
        entries = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve the host {host}") from exc
    if not allow_private:
        for *_rest, sockaddr in entries:
            if refused_address(sockaddr[0]):
                raise FetchError(
                    f"the host {host} is a loopback, private or reserved address "
                    f"({sockaddr[0]}); feeds there are refused unless MAILER_FEED_ALLOW_PRIVATE=1"
                )
    return entries


def connect(host: str, port: int, deadline: Deadline, *, allow_private: bool) -> socket.socket:
    """Open a TCP connection to an allowed address of ``host`` within the deadline.

    Raises:
        FetchError: refused or unresolvable host (see :func:`check_host`).
        OSError: no address accepted the connection (TimeoutError at the deadline).
    """
    error: OSError | None = None
    for family, kind, proto, _name, sockaddr in check_host(host, port, allow_private=allow_private):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            deadline.guard(sock)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address of {host} accepted the connection")
