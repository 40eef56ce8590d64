"""Our DKIM signer (RFC 6376, RFC 8463) checked by an independent one: dkimpy verifies every
message on the bytes the real SMTP server received, RSA and Ed25519, SQLite and PostgreSQL.

DNS cannot be asked here, so dkimpy gets its answers from ``fake_dns_answering_test_keys``,
which serves the TXT records made from the test keys (Ed25519 verification in dkimpy needs
PyNaCl, pinned in requirements-dev.txt).
"""

import base64
import random
from datetime import UTC, datetime, timedelta

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import Relaxed
from sqlalchemy import select

from mailer import clock, create_app
from mailer.delivery import check_deliverability
from mailer.delivery import dispatch as engine
from mailer.delivery import message as mime
from mailer.delivery.message import canonical, dkim
from mailer.delivery.sender.claims import Claimed
from mailer.delivery.sender.signing import SIGN_HERE_FIRST, SigningPool
from mailer.delivery.smtp.framing import data_parts
from mailer.delivery.testcopy import send_test_copies
from mailer.models import Issue
from mailer.subscriptions.tokens import make_unsubscribe_token
from mailer.templating import RenderedMail
from tests.support.deliveries import add_subscribers
from tests.support.signup import confirmation_mails

DOMAIN = "example.com"
RSA_SELECTOR = "rsa2026"
ED_SELECTOR = "ed2026"
URL = "https://news.example.com/unsubscribe/tok.42"
LONG_JAPANESE = "東京の求人と日本のニュース、" * 90  # one 1,260-character line
# Mostly ASCII (quoted-printable) with tabs, runs of spaces, a dot at a line start and a
# long Japanese line; the HTML is mostly Japanese (base64).
TEXT = (
    "Japan Weekly\n\n  1.  Tokyo rents\trise   again\n\t- indented\twith tabs\n"
    ".a line that starts with a dot\ntrailing spaces   \n"
    f"{LONG_JAPANESE}\n"
    + "An English line that is long enough to be wrapped by quoted-printable. " * 20
    + "\n\nSent to @@RECIPIENT@@. Unsubscribe: @@UNSUBSCRIBE_URL@@\n\n\n"
)
HTML = (
    f"<html><body><h1>週刊ニュース</h1><p>{LONG_JAPANESE}</p>"
    + "<p>大阪の求人情報　京都の観光</p>\n" * 40
    + '<p>@@RECIPIENT@@ <a href="@@UNSUBSCRIBE_URL@@">配信停止</a></p></body></html>\n'
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """An RSA-2048 and an Ed25519 key, written the way `dkim keygen` writes them."""
    folder = tmp_path_factory.mktemp("dkim")
    rsa_path, ed_path = folder / "rsa.pem", folder / "ed.pem"
    dkim.write_private_key(rsa_path, dkim.generate_private_key())
    dkim.write_private_key(ed_path, dkim.generate_ed25519_key())
    return rsa_path, ed_path


@pytest.fixture(scope="module")
def fake_dns_answering_test_keys(keys):
    """A fake DNS (the internet is not reachable here): the TXT records of the test keys."""
    rsa_path, ed_path = keys
    records = {
        f"{RSA_SELECTOR}._domainkey.{DOMAIN}.": dkim.txt_record_value(rsa_path.read_bytes()),
        f"{ED_SELECTOR}._domainkey.{DOMAIN}.": dkim.txt_record_value(
            ed_path.read_bytes(), dkim.ED25519
        ),
    }

    def fake_dns_answering_test_keys(name: bytes, timeout: float = 5) -> bytes | None:
        record = records.get(name.decode("ascii"))
        return record.encode("ascii") if record else None

    return fake_dns_answering_test_keys


def dkim_settings(keys, ed25519: bool = True) -> dict:
    rsa_path, ed_path = keys
    settings = {
        "MAILER_DKIM_DOMAIN": DOMAIN,
        "MAILER_DKIM_SELECTOR": RSA_SELECTOR,
        "MAILER_DKIM_PRIVATE_KEY": str(rsa_path),
    }
    if ed25519:
        settings["MAILER_DKIM_ED25519_SELECTOR"] = ED_SELECTOR
        settings["MAILER_DKIM_ED25519_PRIVATE_KEY"] = str(ed_path)
    return settings


@pytest.fixture
def app_config(app_config, keys):
    """The shared app settings with both DKIM signatures on."""
    return {**app_config, **dkim_settings(keys)}


def assert_both_signatures_verify(raw: bytes, dns) -> None:
    """dkimpy verifies the RSA signature (first) and the Ed25519 one (second) of ``raw``."""
    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;")
    assert raw.count(b"DKIM-Signature:") == 2
    assert dkimpy.DKIM(raw).verify(idx=0, dnsfunc=dns), "RSA signature"
    assert dkimpy.DKIM(raw).verify(idx=1, dnsfunc=dns), "Ed25519 signature"
    tags = signature_tags(raw, 1)
    assert (tags["a"], tags["s"], tags["d"]) == ("ed25519-sha256", ED_SELECTOR, DOMAIN)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 §2.1.1


def signature_tags(raw: bytes, index: int = 0) -> dict[str, str]:
    """The tags of the ``index``-th DKIM-Signature header, whitespace removed."""
    fields = canonical.header_fields(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n")
    values = [v for n, v in fields if n.lower() == b"dkim-signature"]
    value = "".join(values[index].decode("ascii").split())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def test_every_digest_message_verifies_on_the_bytes_the_relay_received(
    app, session, smtp_server, fake_dns_answering_test_keys
):
    emails = ["ann@example.com", "a.much.longer.address+news@mail.example.org", "ゆき@例え.jp"]
    add_subscribers(session, emails)
    session.add(
        Issue(
            number=1, period="2026-W49", subject="週刊ニュース #1 東京の求人", text=TEXT, html=HTML
        )
    )
    session.commit()
    engine.start_issue(session, 1)

    summary = engine.send_pending(app)

    assert summary.sent == 3, summary.errors
    received = smtp_server.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(emails)
    for item in received:
        assert_both_signatures_verify(item.data, fake_dns_answering_test_keys)
        tags = signature_tags(item.data)
        signed = tags["h"].split(":")
        assert signed[:10] == [
            "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "list-id", "list-unsubscribe", "list-unsubscribe-post",
        ]  # fmt: skip
        assert signed[10:] == ["from", "list-unsubscribe", "list-unsubscribe-post"]
        assert signature_tags(item.data, 1)["h"] == tags["h"]
        # The signed body is the whole body: an unsubscribe link swapped breaks it.
        tampered = item.data.replace(b"unsubscribe/", b"unsubscribe/x", 1)
        assert not dkimpy.DKIM(tampered).verify(idx=0, dnsfunc=fake_dns_answering_test_keys)


def test_a_test_copy_and_a_confirmation_verify_on_the_received_bytes(
    app, session, client, smtp_server, fake_dns_answering_test_keys
):
    issue = Issue(number=1, period="2026-W49", subject="週刊ニュース", text=TEXT, html=HTML)
    session.add(issue)
    session.commit()
    (result,) = send_test_copies(issue, ["editor@example.org"], app.config)
    assert result.ok, result
    client.post("/subscribe", data={"email": "new.reader@example.com"})
    (mail,) = confirmation_mails(session)  # what the worker's signups job does first
    assert mail.body.startswith(b"DKIM-Signature: ")  # signed when built, sent as stored
    tally = engine.send_transactional(app)
    assert tally.sent == 1

    copy, confirmation = smtp_server.received
    assert copy.rcpt_tos == ["editor@example.org"]
    assert_both_signatures_verify(copy.data, fake_dns_answering_test_keys)
    assert confirmation.rcpt_tos == ["new.reader@example.com"]
    assert_both_signatures_verify(confirmation.data, fake_dns_answering_test_keys)
    signed = signature_tags(confirmation.data)["h"].split(":")
    assert "auto-submitted" in signed and "list-unsubscribe" not in signed


def settings_only(overrides: dict):
    """An app's config with ``overrides``; no database is used."""
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", **overrides}).config


def issue_for_units() -> Issue:
    moment = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    return Issue(
        id=3, number=12, period="2026-W50", subject="週刊ニュース #12", text=TEXT, html=HTML,
        created_at=moment, send_started_at=moment,
    )  # fmt: skip


@pytest.mark.nodb
def test_sent_parts_are_the_signed_message_dot_stuffed(keys, fake_dns_answering_test_keys):
    config = settings_only({**dkim_settings(keys)})
    clock.freeze(datetime(2026, 11, 30, 8, 0, 5, tzinfo=UTC))
    try:
        compiled = mime.compile_issue(issue_for_units(), config)
        whole = compiled.personalise(7, "reader@example.org", URL)
        parts = compiled.personalise_parts(7, "reader@example.org", URL)
    finally:
        clock.freeze(None)
    assert b"".join(parts) == b"".join(data_parts(whole))
    assert_both_signatures_verify(whole, fake_dns_answering_test_keys)
    assert signature_tags(whole)["t"] == str(
        int(datetime(2026, 11, 30, 8, 0, 5, tzinfo=UTC).timestamp())
    )
    reference = mime.build_message(issue_for_units(), 7, "reader@example.org", URL, config)
    assert_both_signatures_verify(reference, fake_dns_answering_test_keys)
    assert signature_tags(reference)["bh"] == signature_tags(whole)["bh"]


BODIES = [
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"a\r\n",
    b"a",
    b"a \r\n\r\n \r\n",
    b"  lead  and  runs \t\tand tabs\t\r\nend\r\n",
    b"x\r\n\t\r\n \r\n",
    b"no final line end",
    b"one\r\n\r\ntwo\r\n\r\n",
]


@pytest.mark.nodb
@pytest.mark.parametrize("body", BODIES)
def test_relaxed_body_matches_dkimpy(body):
    assert canonical.relaxed_body(body) == Relaxed.canonicalize_body(body)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"Subject", b" =?utf-8?b?6YCx5YiK?=\r\n =?utf-8?b?44OL44Ol44O844K5?="),
        (b"TO", b"\t reader@example.org  \t"),
        (b"List-Unsubscribe ", b" <https://x.test/u/1>,\r\n\t<mailto:u@x.test>"),
    ],
)
def test_relaxed_header_matches_dkimpy(name, value):
    ((lower, canon),) = Relaxed.canonicalize_headers([(name, value)])
    assert canonical.relaxed_header(name, value) == lower + b":" + canon


@pytest.mark.nodb
def test_the_piece_hasher_gives_the_whole_body_hash():
    rng = random.Random(14)
    static = [b"--b\r\n", b"Content-Type: text/plain\r\n\r\n", b"a  b\t\r\n", b"plain\r\n"]
    for _ in range(200):

        def message(fill: bytes) -> list[bytes]:
            return [*static, b"to " + fill + b" \r\n", static[2], b"--b--\r\n"]

        hasher = canonical.PieceHasher(message(b"x"), message(b"yyyy"))
        fill = bytes(rng.choice(b"ab \t") for _ in range(rng.randrange(0, 12)))
        pieces = message(fill)
        tail = rng.choice([[], [b"\r\n"], [b"\r\n\r\n"], [b" \r\n"], [b"end"], [b""]])
        pieces += tail
        assert hasher.hash(pieces) == canonical.body_hash(b"".join(pieces)), pieces


@pytest.mark.nodb
def test_an_ed25519_key_needs_both_settings_and_the_rsa_ones(keys):
    with pytest.raises(dkim.DkimConfigError, match="MAILER_DKIM_ED25519_PRIVATE_KEY .*not set"):
        dkim.signer_from_config({**dkim_settings(keys), "MAILER_DKIM_ED25519_PRIVATE_KEY": ""})
    only_ed = {k: v for k, v in dkim_settings(keys).items() if "ED25519" in k}
    with pytest.raises(dkim.DkimConfigError, match="set MAILER_DKIM_DOMAIN"):
        dkim.signer_from_config(only_ed)
    rsa_path, ed_path = keys
    swapped = {**dkim_settings(keys), "MAILER_DKIM_ED25519_PRIVATE_KEY": str(rsa_path)}
    with pytest.raises(dkim.DkimConfigError, match="must be an Ed25519 key"):
        dkim.signer_from_config(swapped)


@pytest.mark.nodb
def test_a_dknewkey_seed_file_signs_like_the_pem_key(keys, tmp_path, fake_dns_answering_test_keys):
    _rsa_path, ed_path = keys
    key = serialization.load_pem_private_key(ed_path.read_bytes(), password=None)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    seed_file = tmp_path / "ed.key"
    seed_file.write_bytes(base64.b64encode(seed) + b"\n")  # what dkimpy's dknewkey writes
    signer = dkim.signer_from_config(
        {**dkim_settings(keys), "MAILER_DKIM_ED25519_PRIVATE_KEY": str(seed_file)}
    )
    mail = RenderedMail("Please confirm", "Confirm: https://news.example.com/confirm/x\n", "")
    raw = signer.sign(mime.build_transactional("new@example.org", mail, settings_only({})))
    assert_both_signatures_verify(raw, fake_dns_answering_test_keys)


def test_keygen_ed25519_writes_the_key_and_prints_the_record(runner, tmp_path):
    out = tmp_path / "ed.pem"
    args = ["dkim", "keygen", "--ed25519", "--out", str(out), "--selector", "e1"]
    result = runner.invoke(args=[*args, "--domain", "example.org"])
    assert result.exit_code == 0, result.output
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    p = base64.b64encode(public).decode()
    record = f'e1._domainkey.example.org. IN TXT "v=DKIM1; k=ed25519; p={p}"'
    assert record in result.output.splitlines()
    assert f"MAILER_DKIM_ED25519_PRIVATE_KEY={out.resolve()}" in result.output


@pytest.mark.nodb
def test_deliverability_check_verifies_the_ed25519_sample_and_lists_its_record(keys):
    report = check_deliverability(settings_only(dkim_settings(keys)), None)
    messages = [(c.level, c.message) for c in report.checks if c.topic == "DKIM"]
    assert ("ok", "the sample's Ed25519 signature verified with that key") in messages
    _rsa_path, ed_path = keys
    record = dkim.dns_record(ED_SELECTOR, DOMAIN, ed_path.read_bytes(), dkim.ED25519)
    assert record in report.records


@pytest.mark.nodb
def test_a_damaged_rsa_key_is_refused_when_loaded(tmp_path):
    # The full OpenSSL key check is skipped at load (0.1 s per process); one signature
    # checked with the public half must catch a key whose parts do not belong together.
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        good.p, good.q, good.d + 2, good.dmp1 + 2, good.dmq1, good.iqmp, good.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    pem = damaged.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(dkim.DkimConfigError, match="the RSA key is damaged"):
        dkim.load_rsa(pem)


def test_with_helper_processes_on_every_message_still_verifies(
    app, session, smtp_server, fake_dns_answering_test_keys
):
    # SQLite: helpers start after SIGN_HERE_FIRST messages and sign once they are up (when
    # is a matter of timing); PostgreSQL: never (its sender processes split the work).
    app.config["MAILER_SIGNING_PROCESSES"] = 2
    emails = [f"reader{n}@example.com" for n in range(SIGN_HERE_FIRST + 200)]
    add_subscribers(session, emails)
    session.add(Issue(number=1, period="2026-W49", subject="週刊ニュース", text=TEXT, html=HTML))
    session.commit()
    engine.start_issue(session, 1)
    # An hour ahead: every delivery is due, and dkimpy allows ten hours of clock skew.
    frozen = clock.now().replace(microsecond=0) + timedelta(hours=1)
    clock.freeze(frozen)

    summary = engine.send_pending(app)

    assert summary.sent == len(emails), summary.errors
    received = smtp_server.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(emails)
    issue = session.scalars(select(Issue)).one()
    signed_here = [signature_tags(r.data)["t"] == str(int(frozen.timestamp())) for r in received]
    assert all(signed_here[: SIGN_HERE_FIRST // 2])  # a small send never waits for helpers
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert all(signed_here)
    for item in received:
        assert_both_signatures_verify(item.data, fake_dns_answering_test_keys)
        # The same message as the sender itself makes, apart from the signatures.
        url = item.message()["List-Unsubscribe"].strip("<>")
        subscriber_id = int(item.message()["Message-ID"].split(".sub-")[1].split("@")[0])
        reference = mime.build_message(issue, subscriber_id, item.rcpt_tos[0], url, app.config)
        assert after_signatures(item.data) == after_signatures(reference)


def after_signatures(raw: bytes) -> bytes:
    """``raw`` without its DKIM-Signature headers (they come first)."""
    head, body = raw.split(b"\r\n\r\n", 1)
    fields = canonical.header_fields(head + b"\r\n")
    kept = [n + b":" + v for n, v in fields if n.lower() != b"dkim-signature"]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


@pytest.mark.nodb
def test_helper_processes_sign_what_the_sender_would_send(keys, fake_dns_answering_test_keys):
    config = settings_only(dkim_settings(keys))
    compiled = mime.compile_issue(issue_for_units(), config)
    rows = [
        Claimed(n, 100 + n, f"r{n}@example.org", 1, 0, None, 0, "news,openings", None)
        for n in range(1, 41)
    ]
    rows.append(Claimed(41, 141, "two words@example.org", 1, 0, None, 0, "news,openings", None))
    frozen = clock.now().replace(microsecond=0) + timedelta(hours=1)
    pool = SigningPool(compiled, config, 2)
    try:
        pool.wait_started()
        pool.prepare(rows)
        clock.freeze(frozen)  # reaches this process only: t= tells who signed
        results = [pool.result(row) for row in rows]
    finally:
        clock.freeze(None)
        pool.close()
    *good, bad = results
    assert bad == (False, "not a single bare e-mail address: 'two words@example.org'")
    for row, (ok, parts) in zip(rows[:-1], good, strict=True):
        assert ok
        raw = b"".join(parts)[: -len(b".\r\n")]  # no line here starts with a dot
        assert_both_signatures_verify(raw, fake_dns_answering_test_keys)
        assert signature_tags(raw)["t"] != str(int(frozen.timestamp()))
        token = make_unsubscribe_token(config["SECRET_KEY"], row.subscriber_id, 1)
        url = f"https://news.example.com/unsubscribe/{token}"
        own = compiled.personalise(row.subscriber_id, row.email, url)
        assert after_signatures(raw) == after_signatures(own)
