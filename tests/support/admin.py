"""Helpers shared by the admin tests (tests/admin/ and the others that sign an admin in).

CSRF stays on (TestConfig has WTF_CSRF_ENABLED=True): helpers read the token from a page
the way a browser would, instead of switching protection off.
"""

import re
from datetime import timedelta

from sqlalchemy import insert

from mailer import clock
from mailer.admin.accounts import create_admin
from mailer.content import items as item_service
from mailer.digest import build
from mailer.extensions import db
from mailer.models import Issue, Subscriber, SubscriberStatus

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/admin/login") -> str:
    """GET ``path`` and return the CSRF token of its first form."""
    response = client.get(path)
    assert response.status_code == 200, f"{path} answered {response.status_code}"
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, f"no csrf_token field on {path}"
    return match.group(1)


def post(
    client, path: str, data: dict | None = None, *, token_from: str = "/admin/settings", **kwargs
):
    """POST ``data`` to ``path`` with a CSRF token read from the page ``token_from``."""
    form = {"csrf_token": csrf_token(client, token_from), **(data or {})}
    return client.post(path, data=form, **kwargs)


def add_admin(app, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    """Create an admin account (committed)."""
    with app.app_context():
        create_admin(db.session, email, password)
        db.session.commit()


def sign_in(client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD):
    """Sign in through the login form; returns the response of the POST."""
    token = csrf_token(client, "/admin/login")
    return client.post(
        "/admin/login", data={"csrf_token": token, "email": email, "password": password}
    )


def signed_in_client(app, client):
    """Create the admin account and sign ``client`` in; returns the client.

    Each test module wraps this in its own ``admin_client`` fixture.
    """
    add_admin(app)
    response = sign_in(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def add_subscribers(
    session, count: int, *, status: str = SubscriberStatus.CONFIRMED, prefix: str = "reader"
) -> None:
    """Insert ``count`` subscribers in one statement (committed): prefix0001@example.com ..."""
    now = clock.now()
    rows = [
        {
            "email": f"{prefix}{n:05d}@example.com",
            "status": status,
            "version": 1,
            "source": "test",
            "created_at": now,
            "confirmed_at": now if status == SubscriberStatus.CONFIRMED else None,
        }
        for n in range(count)
    ]
    session.execute(insert(Subscriber), rows)
    session.commit()


def add_items(session, count: int = 2) -> None:
    """Add ``count`` news items and one opening by hand (committed)."""
    now = clock.now()
    for n in range(count):
        item_service.create_item(
            session,
            section="news",
            title=f"Typhoon season update {n}",
            link=f"https://news.example.com/story/{n}",
            summary="<p>Trains resume on the Tokaido line.</p>",
            published_at=now - timedelta(hours=n + 1),
        )
    item_service.create_item(
        session,
        section="openings",
        title="Backend engineer",
        link="https://jobs.example.com/42",
        company="Example KK",
        location="Tokyo",
        job_type="full-time",
        published_at=now - timedelta(hours=2),
    )
    session.commit()


def built_issue(session) -> Issue:
    """Add items and build this week's issue with the digest room's build (committed)."""
    add_items(session)
    issue = build.build_issue(session)
    assert issue is not None
    session.commit()
    return issue
