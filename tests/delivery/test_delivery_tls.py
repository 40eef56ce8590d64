"""SMTP security modes against a real aiosmtpd server with TLS and AUTH (a test CA we make)."""

import datetime
import ipaddress
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailer.delivery.errors import RelayError
from mailer.delivery.smtp.connection import send_message
from tests.support.smtpd import free_port

BODY = b"From: a@example.com\r\nSubject: tls\r\n\r\nover TLS\r\n"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA certificate and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(_name("Test CA"), _name("Test CA"), ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(_name("127.0.0.1"), _name("Test CA"), key.public_key(), ca_key, ca=False)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder


class Collector:
    """Keeps what arrives and who logged in."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        """Keep the message, noting whether it came over TLS; answer 250."""
        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.messages.append((envelope.rcpt_tos, envelope.content, encrypted))
        return "250 2.0.0 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """Accept the login mailer / s3cret only, noting the mechanism used."""
        ok = (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)


def _server(tls_files, mode: str, collector: Collector) -> Controller:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    options = {"authenticator": collector.authenticate, "auth_require_tls": True}
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    else:
        # aiosmtpd only counts STARTTLS as TLS for AUTH; the socket itself is TLS here.
        options.update(ssl_context=context, auth_require_tls=False)
    return Controller(collector, hostname="127.0.0.1", port=free_port(), **options)


def _config(port: int, mode: str, tls_files, password: str = "s3cret") -> dict:
    return {
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": port,
        "MAILER_SMTP_SECURITY": mode,
        "MAILER_SMTP_USERNAME": "mailer",
        "MAILER_SMTP_PASSWORD": password,
        "MAILER_SMTP_TIMEOUT": 5.0,
        "MAILER_SMTP_MESSAGES_PER_CONNECTION": 1000,
        "MAILER_SMTP_CA_FILE": str(tls_files / "ca.pem"),
        "MAILER_FROM": "Japan Weekly <news@example.com>",
    }


@pytest.mark.nodb
@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_modes_verify_the_relay_and_log_in(tls_files, mode):
    collector = Collector()
    controller = _server(tls_files, mode, collector)
    controller.start()
    try:
        reply = send_message(_config(controller.port, mode, tls_files), "r@example.com", BODY)
        with pytest.raises(RelayError, match="cannot open a session"):
            send_message(_config(controller.port, mode, tls_files, "wrong"), "r@example.com", BODY)
        untrusted = {**_config(controller.port, mode, tls_files), "MAILER_SMTP_CA_FILE": ""}
        with pytest.raises(RelayError, match="CERTIFICATE_VERIFY_FAILED"):
            send_message(untrusted, "r@example.com", BODY)
    finally:
        controller.stop()
    assert reply.ok
    assert collector.messages == [(["r@example.com"], BODY, True)]
    assert collector.logins  # one successful AUTH


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_the_digest_goes_out_over_tls(tls_files, mode, app_config, request):
    """The bulk path (non-blocking sockets in the sender's event loop) over TLS, both DBs."""
    from mailer.delivery import dispatch as engine
    from mailer.extensions import db
    from tests.support.deliveries import add_subscribers, make_issue

    collector = Collector()
    controller = _server(tls_files, mode, collector)
    controller.start()
    try:
        app_config.update(_config(controller.port, mode, tls_files))
        app_config["MAILER_SMTP_CONNECTIONS"] = 2
        app = request.getfixturevalue("app")
        emails = [f"t{i}@example.com" for i in range(20)]
        with app.app_context():
            add_subscribers(db.session, emails)
            make_issue(db.session)
            engine.start_issue(db.session, 1)
            summary = engine.send_pending(app)
    finally:
        controller.stop()
    assert (summary.sent, summary.errors, summary.issues) == (20, [], {1: "sent"})
    assert sorted(rcpt[0] for rcpt, _content, _tls in collector.messages) == sorted(emails)
    assert all(encrypted for _rcpt, _content, encrypted in collector.messages)
