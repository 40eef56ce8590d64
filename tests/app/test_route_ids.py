"""Numbers in URLs beyond the range of their database column answer 404, never 500.

Ids are BIGINT (signed 64-bit; SQLite's INTEGER is the same) and issue numbers INTEGER (signed
32-bit on PostgreSQL); a larger number in a URL used to reach the database and fail there
(OverflowError on SQLite, "integer out of range" on PostgreSQL). Only ASCII digits name a
number: a full-width or other Unicode digit answers 404. SQLite and PostgreSQL.
"""

import pytest
from werkzeug.exceptions import NotFound
from werkzeug.routing import AnyConverter, IntegerConverter

from mailer import clock
from mailer.digest import build
from mailer.models import IssueStatus
from tests.support.admin import csrf_token, signed_in_client

# Each side of the INTEGER and the BIGINT limits, and the number a new user tried.
LARGE_NUMBERS = (2**31 - 1, 2**31, 2**63 - 1, 2**63, 99999999999999999999)


def _int_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL with every integer argument at {n}) for every such route."""
    found = []
    for rule in app.url_map.iter_rules():
        converters = rule._converters
        if not any(isinstance(c, IntegerConverter) for c in converters.values()):
            continue
        values = {}
        for name, converter in converters.items():
            if isinstance(converter, AnyConverter):
                values[name] = sorted(converter.items)[0]
            elif isinstance(converter, IntegerConverter):
                values[name] = 7654321  # replaced below: url_for checks no range
            else:
                values[name] = "x"
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **values).replace("7654321", "{n}")
        found += [(rule.endpoint, m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_integer_route_answers_404_for_numbers_beyond_the_column_range(app, client):
    routes = _int_routes(app)
    endpoints = {endpoint for endpoint, _method, _url in routes}
    assert {"digest.issue_page", "admin.subscriber_detail", "admin.issue_detail"} <= endpoints
    signed_in_client(app, client)
    token = csrf_token(client, "/admin/settings")
    for endpoint, method, url in routes:
        for n in LARGE_NUMBERS:
            response = client.open(url.format(n=n), method=method, data={"csrf_token": token})
            assert response.status_code == 404, (endpoint, method, n, response.status_code)


def test_the_public_archive_answers_404_for_a_huge_number_signed_out(client):
    for n in LARGE_NUMBERS:
        response = client.get(f"/archive/{n}")
        assert response.status_code == 404, n
        assert "Not Found" in response.get_data(as_text=True)


def test_page_cursors_beyond_the_id_range_or_not_ascii_show_the_first_page(app, client):
    admin = signed_in_client(app, client)
    pages = (
        "/admin/subscribers?after={n}",
        "/admin/subscribers?before={n}",
        "/admin/issues?after={n}",
        "/admin/items?after={n}",
        "/admin/items?before={n}",
    )
    for page in pages:
        for value in ("99999999999999999999", str(2**63), "²", "١٢"):
            response = admin.get(page.format(n=value))
            assert response.status_code == 200, (page, value)
        assert admin.get(page.format(n=str(2**63 - 1))).status_code == 200, page
    # Issue numbers are INTEGER: the issue list's cursor is an issue number.
    assert admin.get(f"/admin/issues?after={2**31}").status_code == 200


def test_command_line_ids_beyond_the_column_range_are_refused_in_one_line(app, runner):
    too_big = str(2**63)
    for args in (
        ["feeds", "refresh", too_big],
        ["feeds", "remove", too_big, "--yes"],
        ["items", "hide", too_big],
        ["items", "unhide", too_big],
        ["digest", "send", str(2**31)],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 2, (args, result.output)
        assert "is not in the range" in result.output, args
        assert not isinstance(result.exception, OverflowError), args


# Decimal digits that are not ASCII: Python's \d matches them and int() reads them.
UNICODE_DIGITS = ("\uff11", "\u0661", "\u09e7", "1\uff12")  # full-width 1, Arabic-Indic 1, ...


def test_every_integer_route_matches_ascii_digits_only(app):
    adapter = app.url_map.bind("news.example.com")
    for endpoint, method, url in _int_routes(app):
        assert adapter.match(url.format(n=1), method=method)[0] == endpoint
        for digits in UNICODE_DIGITS:
            with pytest.raises(NotFound):
                adapter.match(url.format(n=digits), method=method)


def test_the_archive_answers_404_for_a_full_width_issue_number(client, session, make_item):
    make_item(title="Archive story")
    session.commit()
    issue = build.build_issue(session, period="2026-W41")
    issue.status, issue.sent_at = IssueStatus.SENT, clock.now()
    session.commit()
    assert client.get("/archive/1").status_code == 200
    response = client.get("/archive/%EF%BC%91")  # UTF-8 of U+FF11 FULLWIDTH DIGIT ONE
    assert response.status_code == 404
    assert "Archive story" not in response.get_data(as_text=True)
