"""The development mail catcher: a real SMTP send lands as an .eml file, /dev/mailbox shows it."""

import re
import smtplib
from email.message import EmailMessage

import pytest

from mailer import create_app
from mailer.devmail import MailCatcher, list_messages, read_message
from tests.support.smtpd import free_port

pytestmark = pytest.mark.nodb


def _message(subject: str, to: str, date: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Japan Weekly <newsletter@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{abs(hash(subject))}@example.com>"
    message.set_content("東京の求人: https://example.com/jobs/1\n")
    message.add_alternative(
        '<p>東京の<a href="https://example.com/jobs/1">求人</a></p>'
        "<script>parent.document.title='pwned'</script>",
        subtype="html",
    )
    return message


@pytest.fixture
def mailbox(tmp_path):
    return tmp_path / "instance" / "mailbox"


@pytest.fixture
def catcher(mailbox):
    with MailCatcher(mailbox, port=free_port()) as running:
        yield running


def _send(catcher: MailCatcher, message: EmailMessage, rcpts: list[str]) -> None:
    with smtplib.SMTP(catcher.host, catcher.port, timeout=10) as smtp:
        smtp.send_message(message, from_addr="bounces@example.com", to_addrs=rcpts)


def test_catcher_stores_each_message_as_an_eml_file(catcher, mailbox):
    first = _message("第1号 Tokyo news", "a@example.com", "Mon, 30 Nov 2026 08:00:00 +0900")
    _send(catcher, first, ["a@example.com"])
    _send(
        catcher,
        _message("Second", "b@example.com", "Mon, 30 Nov 2026 08:00:05 +0900"),
        [
            "b@example.com",
            "c@example.com",
        ],
    )

    files = sorted(mailbox.glob("*.eml"))
    assert len(files) == 2
    raw = files[0].read_bytes()
    # The envelope comes first as trace headers, then the message exactly as sent.
    assert raw.startswith(b"Return-Path: <bounces@example.com>\r\nDelivered-To: a@example.com\r\n")
    stored = read_message(mailbox, files[0].name)
    assert stored["Subject"] == "第1号 Tokyo news"
    assert stored.get_body(("plain",)).get_content() == "東京の求人: https://example.com/jobs/1\r\n"
    assert files[1].read_bytes().count(b"Delivered-To: ") == 2
    assert not list(mailbox.glob(".*.tmp")), "no temporary file is left behind"

    summaries = list_messages(mailbox)
    assert [s.subject for s in summaries] == ["Second", "第1号 Tokyo news"]  # newest first
    assert summaries[0].to == "b@example.com"
    assert summaries[1].date.isoformat() == "2026-11-30T08:00:00+09:00"


def test_read_message_refuses_names_outside_the_mailbox(catcher, mailbox):
    (mailbox.parent / "secret.eml").write_bytes(b"Subject: secret\r\n\r\nx")
    for name in ("../secret.eml", "secret.eml", "20261130T080000000000Z-00000000.eml"):
        with pytest.raises(FileNotFoundError):
            read_message(mailbox, name)


@pytest.fixture
def debug_client(tmp_path):
    app = create_app({"DEBUG": True, "MAILER_INSTANCE_DIR": str(tmp_path / "instance")})
    return app.test_client()


def test_dev_mailbox_lists_and_shows_caught_messages(catcher, mailbox, debug_client):
    _send(
        catcher,
        _message("Issue 1: 東京", "a@example.com", "Mon, 30 Nov 2026 08:00:00 +0900"),
        ["a@example.com"],
    )
    _send(
        catcher,
        _message("Issue 2", "z@example.com", "Mon, 07 Dec 2026 08:00:00 +0900"),
        ["z@example.com"],
    )
    newest, oldest = (s.name for s in list_messages(mailbox))

    listing = debug_client.get("/dev/mailbox")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert page.index("Issue 2") < page.index("Issue 1: 東京")
    assert "z@example.com" in page and "2026-11-30 08:00:00 +0900" in page
    assert f'href="/dev/mailbox/{oldest}"' in page

    shown = debug_client.get(f"/dev/mailbox/{oldest}")
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert "Issue 1: 東京" in html
    assert "東京の求人: https://example.com/jobs/1" in html  # the text part
    assert "Message-ID" in html and "Delivered-To" in html  # the headers
    iframe = re.search(r"<iframe[^>]*>", html).group(0)
    # No scripts, no same-origin access for the mail's HTML; links open outside the sandbox.
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in iframe
    assert '<li><a href="https://example.com/jobs/1">https://example.com/jobs/1</a></li>' in html
    assert f'src="/dev/mailbox/{oldest}/html"' in iframe
    assert "<script>parent" not in html, "the HTML part is never inlined into our page"

    framed = debug_client.get(f"/dev/mailbox/{oldest}/html")
    assert framed.status_code == 200
    assert framed.mimetype == "text/html"
    assert framed.headers["Content-Security-Policy"].startswith(
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'"
    )
    assert framed.get_data(as_text=True).startswith('<base target="_blank"><p>東京の')
    assert '<a href="https://example.com/jobs/1">求人</a>' in framed.get_data(as_text=True)

    raw = debug_client.get(f"/dev/mailbox/{newest}/raw")
    assert raw.status_code == 200 and raw.mimetype == "text/plain"
    assert raw.data == (mailbox / newest).read_bytes()


def test_dev_mailbox_answers_404_for_unknown_names(debug_client, catcher):
    assert debug_client.get("/dev/mailbox").status_code == 200
    for path in (
        "/dev/mailbox/nope.eml",
        "/dev/mailbox/..%2F..%2Fconfig.py",
        "/dev/mailbox/x/html",
    ):
        assert debug_client.get(path).status_code == 404


def test_dev_mailbox_is_not_there_without_debug(tmp_path):
    app = create_app({"DEBUG": False, "MAILER_INSTANCE_DIR": str(tmp_path)})
    assert "devmail" not in app.blueprints
    assert app.test_client().get("/dev/mailbox").status_code == 404
