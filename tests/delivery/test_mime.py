"""The digest, test and transactional messages: bytes, headers, encodings, line lengths.

MIME tests need config but no database: they use an app on in-memory SQLite that never
touches it, and Issue objects built in memory.
"""

import html
import random
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import MIMEPart

import pytest

from mailer import create_app
from mailer.delivery import message as mime
from mailer.delivery.message.assemble import POLICY
from mailer.delivery.message.body import Base64Template, BodyTemplate
from mailer.delivery.message.headers import HeaderValueError
from mailer.delivery.smtp.framing import data_bytes, dot_stuff
from mailer.digest.render import RECIPIENT_MARKER, UNSUBSCRIBE_URL_MARKER
from mailer.models import Issue
from mailer.templating import RenderedMail, render_mail

pytestmark = pytest.mark.nodb

STARTED = datetime(2026, 12, 7, 8, 0, 5, tzinfo=UTC)
DIGEST_HEADERS = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-type",
]
JA_LINE = "東京都は来年度から外国人向けの行政サービスを拡充すると発表した。" * 160  # 5,120 chars
LONG_URL = "https://jobs.example.jp/openings/" + "a1b2c3d4e5" * 500  # 5,033 chars, unbroken
FOOTER_TEXT = f"You get this at {RECIPIENT_MARKER}.\nUnsubscribe: {UNSUBSCRIBE_URL_MARKER}\n"
FOOTER_HTML = (
    f'<p>Sent to {RECIPIENT_MARKER}. <a href="{UNSUBSCRIBE_URL_MARKER}">Unsubscribe</a></p>'
)
RECIPIENTS = [
    (1, "alice@example.org"),
    (22, "o'brien+news=weekly&co@example.com"),
    (333, "a" * 64 + "@" + ".".join(["sub" + "d" * 56] * 3) + ".example.co.jp"),
    (4444, "ユーザー@例え.jp"),
]


@pytest.fixture(scope="module")
def config():
    """The test config (a sender with a non-ASCII display name); no database is used."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "MAILER_FROM": "Japan Weekly 日本の週刊ニュース <newsletter@example.com>",
        }
    )
    return app.config


def make_issue(subject="Japan Weekly #3", text="", html_body="", **fields) -> Issue:
    """An Issue in memory with the footer markers appended to both parts."""
    return Issue(
        id=fields.pop("id", 7),
        number=fields.pop("number", 3),
        period="2026-W50",
        subject=subject,
        text=text + FOOTER_TEXT,
        html=f"<html><body>{html_body}{FOOTER_HTML}</body></html>",
        created_at=STARTED,
        send_started_at=STARTED,
        **fields,
    )


def japanese_issue() -> Issue:
    return make_issue(
        subject="週刊ニュースと求人 第3号: 東京の新しい仕事とニュースがたくさんあります。"
        "今週も読んでください",
        text=f"ニュース\n{JA_LINE}\n{LONG_URL}\n\n" + f"{JA_LINE} {RECIPIENT_MARKER}\n",
        html_body=f'<p>{JA_LINE}</p><a href="{LONG_URL}">{JA_LINE}</a>',
    )


def ascii_issue() -> Issue:
    unbroken = "x" * 5000
    return make_issue(
        subject="Japan Weekly #3: " + "Jobs in Tokyo and Osaka " * 6,
        text=f"News\n{unbroken}\n{LONG_URL}\nSee {LONG_URL} = {UNSUBSCRIBE_URL_MARKER} \n",
        html_body=f'<p style="color:#333">{unbroken}</p><a href="{LONG_URL}">read</a>\t\n'
        + f"<p>{UNSUBSCRIBE_URL_MARKER}={RECIPIENT_MARKER}</p>",
    )


def unsubscribe_url(subscriber_id: int) -> str:
    return f"https://news.example.com/unsubscribe/{'tok' * (subscriber_id % 97)}.{subscriber_id}"


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_names(raw: bytes) -> list[str]:
    lines = header_block(raw).split(b"\r\n")
    return [line.split(b":", 1)[0].decode().lower() for line in lines if line[:1] not in b" \t"]


@pytest.mark.parametrize("issue_factory", [japanese_issue, ascii_issue])
def test_personalise_is_byte_for_byte_the_full_build(config, issue_factory):
    issue = issue_factory()
    compiled = mime.compile_issue(issue, config)
    for subscriber_id, email in RECIPIENTS:
        url = unsubscribe_url(subscriber_id)
        fast = compiled.personalise(subscriber_id, email, url)
        assert fast == mime.build_message(issue, subscriber_id, email, url, config)
        message = message_from_bytes(fast, policy=policy.default)
        assert message["To"] == email
        assert message["List-Unsubscribe"] == f"<{url}>"
        text = message.get_body(("plain",)).get_content()
        body = message.get_body(("html",)).get_content()
        assert f"Unsubscribe: {url}" in text and email in text
        assert f'href="{html.escape(url)}"' in body and html.escape(email) in body
        assert RECIPIENT_MARKER not in text + body and UNSUBSCRIBE_URL_MARKER not in text + body


def test_both_encodings_are_exercised(config):
    # Japanese text is shorter in base64, ASCII text in quoted-printable (mime_body).
    japanese = mime.compile_issue(japanese_issue(), config)
    ascii_only = mime.compile_issue(ascii_issue(), config)
    assert (japanese.text_cte, japanese.html_cte) == ("base64", "base64")
    assert (ascii_only.text_cte, ascii_only.html_cte) == ("quoted-printable", "quoted-printable")
    raw = ascii_only.personalise(1, "alice@example.org", unsubscribe_url(1))
    assert raw.count(b"Content-Transfer-Encoding: quoted-printable\r\n") == 2


def test_decoded_content_headers_and_dates(config):
    issue = japanese_issue()
    raw = mime.compile_issue(issue, config).personalise(5, "bob@example.net", unsubscribe_url(5))
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == issue.subject
    assert message["From"].addresses[0].display_name == "Japan Weekly 日本の週刊ニュース"
    assert message["From"].addresses[0].addr_spec == "newsletter@example.com"
    assert message["Date"].datetime == STARTED
    assert message["Message-ID"] == "<issue-7.sub-5@example.com>"
    assert message["List-Id"] == '"Japan Weekly" <weekly.example.com>'
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert JA_LINE in message.get_body(("plain",)).get_content()
    assert LONG_URL in message.get_body(("plain",)).get_content()
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_charset() for p in message.iter_parts()] == ["utf-8", "utf-8"]


def test_message_id_is_stable_for_a_resend(config):
    issue = ascii_issue()
    first = mime.compile_issue(issue, config).personalise(9, "a@example.org", unsubscribe_url(9))
    again = mime.compile_issue(issue, config).personalise(9, "a@example.org", unsubscribe_url(9))
    assert first == again
    assert mime.message_id(7, 9, "example.com") == "<issue-7.sub-9@example.com>"


def test_no_raw_line_over_998_octets(config):
    for issue in (japanese_issue(), ascii_issue()):
        raw = mime.compile_issue(issue, config).personalise(*RECIPIENTS[2], unsubscribe_url(3))
        lines = raw.split(b"\r\n")
        assert max(len(line) for line in lines) <= 998
        # RFC 2045: encoded body lines are at most 76 characters; headers fold at 78 except
        # where one token is longer (this recipient's address).
        folded = [line for line in header_block(raw).split(b"\r\n") if not line.startswith(b"To:")]
        assert max(len(line) for line in folded) <= 78
        assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
        assert b"\n" not in raw.replace(b"\r\n", b"")


def test_digest_header_set_and_counts(config):
    raw = mime.compile_issue(ascii_issue(), config).personalise(
        1, "a@example.org", unsubscribe_url(1)
    )
    assert header_names(raw) == DIGEST_HEADERS


def test_unsubscribe_mailto_comes_second_when_configured(config):
    mailto_config = dict(config, MAILER_UNSUBSCRIBE_MAILTO="unsubscribe@example.com")
    issue = ascii_issue()
    url = unsubscribe_url(1)
    raw = mime.compile_issue(issue, mailto_config).personalise(1, "a@example.org", url)
    assert raw == mime.build_message(issue, 1, "a@example.org", url, mailto_config)
    message = message_from_bytes(raw, policy=policy.default)
    value = " ".join(str(message["List-Unsubscribe"]).split())
    assert value == f"<{url}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    assert header_names(raw).count("list-unsubscribe") == 1


def test_test_send_has_the_same_header_set(config):
    raw = mime.build_test_message(ascii_issue(), "editor@example.org", config)
    assert header_names(raw) == DIGEST_HEADERS
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"].startswith("[TEST] Japan Weekly #3")
    assert message["List-Unsubscribe"] == "<https://news.example.com/unsubscribe/test>"
    assert "https://news.example.com/unsubscribe/test" in message.get_body(("plain",)).get_content()
    assert "editor@example.org" in message.get_body(("html",)).get_content()


def test_transactional_mail_has_no_list_headers(config):
    mail = RenderedMail(
        subject="Please confirm your subscription to News and openings in Japan",
        text="Confirm: https://news.example.com/confirm/abc\n",
        html='<p><a href="https://news.example.com/confirm/abc">Confirm</a></p>',
    )
    raw = mime.build_transactional("new@example.org", mail, config)
    assert header_names(raw) == [
        "from", "to", "subject", "date", "message-id", "mime-version", "auto-submitted",
        "content-type",
    ]  # fmt: skip
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Auto-Submitted"] == "auto-generated"
    assert "https://news.example.com/confirm/abc" in message.get_body(("plain",)).get_content()
    text_only = mime.build_transactional(
        "new@example.org", RenderedMail("Hi", "Text\n", ""), config
    )
    assert message_from_bytes(text_only, policy=policy.default).get_content_type() == "text/plain"


def test_confirmation_mail_from_the_real_templates(config):
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        mail = render_mail(
            "confirm",
            list_name="News and openings in Japan",
            confirm_url="https://news.example.com/confirm/tok",
            email="new@example.org",
            base_url="https://news.example.com",
            valid_for="7 days",
        )
    raw = mime.build_transactional("new@example.org", mail, config)
    assert "list-unsubscribe" not in header_names(raw)
    assert "list-unsubscribe-post" not in header_names(raw)
    assert header_names(raw).count("subject") == 1


@pytest.mark.parametrize(
    "subject",
    [
        "Jobs =?UTF-8?Q?=0A?=Bcc: x@example.com",
        "Weekly digest ends in a newline\n",
        "Two\r\nBcc: y@example.com\r\n\r\nbody",
        "Line\u2028Separator\x85Next\x00Null",
    ],
)
def test_header_injection_leaves_exactly_the_intended_headers(config, subject):
    issue = make_issue(subject=subject, text="News\n")
    raw = mime.compile_issue(issue, config).personalise(1, "a@example.org", unsubscribe_url(1))
    assert raw == mime.build_message(issue, 1, "a@example.org", unsubscribe_url(1), config)
    assert header_names(raw) == DIGEST_HEADERS
    message = message_from_bytes(raw, policy=policy.default)
    assert "bcc" not in [name.lower() for name in message.keys()]
    decoded = str(message["Subject"])
    assert "\n" not in decoded and "\r" not in decoded
    assert decoded == " ".join(subject.replace("\x00", "").split())
    test_copy = mime.build_test_message(issue, "editor@example.org", config)
    assert header_names(test_copy) == DIGEST_HEADERS


@pytest.mark.parametrize(
    ("email", "url"),
    [
        ("a@example.org\r\nBcc: x@example.com", "https://news.example.com/unsubscribe/t"),
        ("a@example.org, b@example.org", "https://news.example.com/unsubscribe/t"),
        ("not-an-address", "https://news.example.com/unsubscribe/t"),
        ("a@example.org", "https://news.example.com/unsubscribe/t>\r\nBcc: x@example.com"),
        ("a@example.org", ""),
    ],
)
def test_bad_recipient_values_are_refused(config, email, url):
    compiled = mime.compile_issue(ascii_issue(), config)
    with pytest.raises(HeaderValueError):
        compiled.personalise(1, email, url)
    with pytest.raises(HeaderValueError):
        mime.build_message(ascii_issue(), 1, email, url, config)


def test_bad_from_setting_names_the_setting(config):
    with pytest.raises(HeaderValueError, match="MAILER_FROM"):
        mime.compile_issue(ascii_issue(), dict(config, MAILER_FROM="nobody"))


def test_smtp_data_is_dot_stuffed_and_terminated(config):
    issue = make_issue(text=".starts with a dot\n..two\n")
    compiled = mime.compile_issue(issue, config)
    data = compiled.personalise_smtp_data(1, "a@example.org", unsubscribe_url(1))
    assert data.endswith(b"\r\n.\r\n")
    assert b"\r\n..starts with a dot\r\n" in data and b"\r\n...two\r\n" in data
    plain = compiled.personalise(1, "a@example.org", unsubscribe_url(1))
    assert data[:-3].replace(b"\r\n..", b"\r\n.") == plain


def _reference_body(text: str, cte: str) -> bytes:
    part = MIMEPart(policy=POLICY)
    part.set_content(text, charset="utf-8", cte=cte)
    return part.as_bytes(policy=POLICY).split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(("template", "cte"), [(BodyTemplate, "quoted-printable"),
                                               (Base64Template, "base64")])  # fmt: skip
def test_body_templates_match_the_standard_library_on_random_text(template, cte):
    # Markers land at every column next to escapes, spaces and tabs at line ends, CR/LF
    # variants and multi-byte characters: where a soft line break or a base64 group boundary
    # could fall inside or right after a value.
    rng = random.Random(20261207)
    alphabet = list("abc =\t.é日<>&") + ["@@U@@", "@@R@@", "\n", "\r\n", "\u2028"]
    for _ in range(400):
        length = rng.choice([3, 60, 200, 500])
        text = "".join(
            rng.choice(alphabet) if rng.random() < 0.5 else rng.choice("abcdefgh")
            for _ in range(length)
        )
        compiled = template(text, ("@@U@@", "@@R@@"))
        for _ in range(3):
            values = {
                "@@U@@": "https://x.example/u/" + "t" * rng.randint(1, 120) + rng.choice("=é "),
                "@@R@@": rng.choice(["a@b.c", "a=b@example.com", "ユーザー@例え.jp"]),
            }
            filled = text.replace("@@U@@", "\0").replace("@@R@@", values["@@R@@"])
            filled = filled.replace("\0", values["@@U@@"])
            assert compiled.render(values) == _reference_body(filled, cte), (text, values)


@pytest.mark.parametrize("template", [BodyTemplate, Base64Template])
def test_body_templates_dot_stuff_exactly_like_stuffing_the_whole_body(template):
    # Lines (and soft-broken continuation lines) that start with a dot, in the fixed lines,
    # in the filled-in lines and right after a value: the pieces stuffed once at compile time
    # plus the filled-in lines stuffed per message must equal stuffing the whole body.
    rng = random.Random(20261129)
    alphabet = list("ab .=\t..") + ["@@U@@", "@@R@@", "\n", "\n.", "\r\n.."]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.choice([5, 80, 300])))
        compiled = template(text, ("@@U@@", "@@R@@"))
        values = {
            "@@U@@": "https://x.example/u/" + "." * rng.randint(1, 90),
            "@@R@@": rng.choice(["a@b.c", ".dot@example.com"]),
        }
        stuffed: list[bytes] = []
        compiled.extend(stuffed, values, stuffed=True)
        assert b"".join(stuffed) == dot_stuff(compiled.render(values)), (text, values)


@pytest.mark.parametrize("issue_factory", [japanese_issue, ascii_issue])
def test_personalised_data_parts_are_the_dot_stuffed_full_build(config, issue_factory):
    issue = issue_factory()
    issue.text = ".first line\n" + issue.text + "\n..\n.\n"
    issue.html = issue.html.replace("<p", "\n.<p")
    compiled = mime.compile_issue(issue, config)
    for subscriber_id, email in RECIPIENTS:
        url = unsubscribe_url(subscriber_id)
        full = mime.build_message(issue, subscriber_id, email, url, config)
        parts = compiled.personalise_parts(subscriber_id, email, url)
        assert b"".join(parts) == data_bytes(full)
        assert b"".join(parts).endswith(b"\r\n.\r\n")
