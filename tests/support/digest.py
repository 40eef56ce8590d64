"""Helpers for the digest tests."""

from mailer.models import Issue


def copy_issue(issue: Issue, **changes) -> Issue:
    """A transient copy of ``issue``'s rendered parts with some of them changed."""
    fields = {
        name: getattr(issue, name) for name in ("number", "period", "subject", "html", "text")
    }
    return Issue(**{**fields, **changes})
