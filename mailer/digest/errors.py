"""Errors of the digest room (domain errors: the CLI and views turn them into messages)."""


class DigestError(Exception):
    """Base class of the digest room's errors."""


class PeriodError(DigestError, ValueError):
    """A period string that is not an ISO week such as ``2026-W49``."""
