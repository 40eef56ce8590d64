"""Which issues the public archive shows: those sent or being sent, never drafts."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Issue, IssueStatus

PUBLIC_STATUSES = (IssueStatus.SENT, IssueStatus.SENDING)


def public_issues(session: Session, limit: int = 200) -> list[Issue]:
    """Return the public issues (status sent or sending), newest number first."""
    query = (
        select(Issue)
        .where(Issue.status.in_(PUBLIC_STATUSES))
        .order_by(Issue.number.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def public_issue(session: Session, number: int) -> Issue | None:
    """Return issue ``number`` when it is public, else None (drafts stay private)."""
    query = select(Issue).where(Issue.number == number, Issue.status.in_(PUBLIC_STATUSES))
    return session.scalars(query).one_or_none()
