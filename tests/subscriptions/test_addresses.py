"""Address validation: the shared corpora, our stricter policy (named), DNS, masking, hashing.

Policy differences from the corpora, on purpose (see mailer/subscriptions/addresses.py):
- POLICY_QUOTED: quoted local parts are refused (valid per RFC 5321, unusable in practice).
- POLICY_DISPLAY_NAME: ``Name <a@b>`` is refused: the form wants the address only.
- POLICY_DOMAIN_LITERAL: ``a@[127.0.0.1]`` is refused.
- POLICY_SMTPUTF8: internationalized local parts are refused unless MAILER_ALLOW_SMTPUTF8.
- POLICY_TRIM: blanks around the address are trimmed, not refused (phone keyboards add them).
- POLICY_DOTLESS_DOMAIN: a domain without a dot (``test@io``) is refused (email-validator:
  not globally deliverable).
"""

import json
import socket
import threading
from urllib.parse import urlencode

import dns.flags
import dns.message
import dns.rcode
import dns.resolver
import dns.rrset
import pytest

from mailer.models import Subscriber
from mailer.subscriptions.addresses import email_hash, mask_email, normalize_email
from mailer.subscriptions.errors import InvalidAddress
from tests.support.signup import run_signup_job

QUOTED, DISPLAY_NAME, SMTPUTF8, TRIM, DOTLESS = (
    "POLICY_QUOTED",
    "POLICY_DISPLAY_NAME",
    "POLICY_SMTPUTF8",
    "POLICY_TRIM",
    "POLICY_DOTLESS_DOMAIN",
)

# The only corpus cases that differ from a valid address by surrounding blanks alone.
TRIMMED_TO_VALID = {" test@iana.org", "test@iana.org "}


def _load(shared_dir, name):
    return json.loads((shared_dir / "data" / "emails" / name).read_text(encoding="utf-8"))


def validator_expectation(case: dict, allow_smtputf8: bool) -> tuple[bool, str | None]:
    """(accepted?, the policy that decides it when it differs from the corpus verdict)."""
    text, verdict = case["input"], case["verdict"]
    if verdict == "valid":
        if '"' in text:
            return False, QUOTED
        if "<" in text:
            return False, DISPLAY_NAME
        if case.get("smtputf8") and not allow_smtputf8:
            return False, SMTPUTF8
        return True, None
    if verdict == "valid_only_if_allow_quoted_local":
        return False, QUOTED
    if verdict == "valid_only_if_allow_domain_literal":
        return False, "POLICY_DOMAIN_LITERAL"
    if text in TRIMMED_TO_VALID:
        return True, TRIM
    # invalid, invalid_in_strict_mode (we are strict), invalid_if_smtputf8_off
    return False, None


def isemail_expectation(case: dict) -> tuple[bool, str | None]:
    address, verdict = case["address"], case["verdict"]
    if address == "test@io":
        return False, DOTLESS
    if address in TRIMMED_TO_VALID:
        return True, TRIM
    return verdict in ("valid", "valid_syntax_dns_warning"), None


def _verdict(address: str, allow_smtputf8: bool) -> tuple[bool, str]:
    try:
        return True, normalize_email(
            address, check_deliverability=False, allow_smtputf8=allow_smtputf8, dns_timeout=1
        )
    except InvalidAddress as exc:
        assert exc.message.strip(), f"refusal of {address!r} has no message"
        return False, exc.message


@pytest.mark.nodb
@pytest.mark.parametrize("allow_smtputf8", [False, True], ids=["smtputf8-off", "smtputf8-on"])
def test_email_validator_corpus_every_case_gets_its_verdict(shared_dir, allow_smtputf8):
    cases = _load(shared_dir, "email-validator-cases.json")
    assert len(cases) == 286
    wrong = []
    for case in cases:
        expected, policy = validator_expectation(case, allow_smtputf8)
        accepted, result = _verdict(case["input"], allow_smtputf8)
        if accepted != expected:
            wrong.append((case["input"], case["verdict"], policy, result))
        elif accepted and case.get("normalized") and policy is None:
            # Stored form: the ASCII form when there is one, else the normalized one.
            assert result == (case.get("ascii_email") or case["normalized"]), case
    assert wrong == []


@pytest.mark.nodb
def test_isemail_corpus_every_case_gets_its_verdict(shared_dir):
    cases = _load(shared_dir, "isemail-tests.json")
    assert len(cases) == 164
    wrong = []
    for case in cases:
        expected, policy = isemail_expectation(case)
        accepted, result = _verdict(case["address"], allow_smtputf8=False)
        if accepted != expected:
            wrong.append((case["address"], case["verdict"], policy, result))
    assert wrong == []


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("typed", "message_part"),
    [
        ("Jane Doe <jane@example.com>", "without a name or angle brackets"),
        ('"jane doe"@example.com', "Quoting the part before the @-sign is not allowed"),
        ("jane@example.com\r\nBcc: victim@example.org", "line breaks"),
        ("jane@example.com\n", "line breaks"),
        ("jane@exa\x00mple.com", "control characters"),
        ("a" * 300 + "@example.com", "too long"),
        ("x" * 5000, "too long"),
        ("a" * 65 + "@example.com", "too long before the @-sign"),
        ("", "enter your email address"),
        ("   ", "enter your email address"),
        ("jane@[192.0.2.1]", "bracketed IP address"),
        ("jäne@example.com", "Internationalized characters before the @-sign"),
        ("jane.example.com", "@-sign"),
    ],
)
def test_refusals_carry_a_clear_message(typed, message_part):
    with pytest.raises(InvalidAddress) as caught:
        normalize_email(typed, check_deliverability=False, allow_smtputf8=False, dns_timeout=1)
    assert message_part in caught.value.message


@pytest.mark.nodb
def test_normalized_form_lowercases_the_domain_and_keeps_the_local_part():
    assert (
        normalize_email(
            " Jane.Doe@EXAMPLE.Com ",
            check_deliverability=False,
            allow_smtputf8=False,
            dns_timeout=1,
        )
        == "Jane.Doe@example.com"
    )
    assert (
        normalize_email(
            "jeff@臺網中心.tw", check_deliverability=False, allow_smtputf8=False, dns_timeout=1
        )
        == "jeff@xn--fiqq24b10vi0d.tw"
    )


@pytest.mark.nodb
def test_mask_and_keyed_hash():
    assert mask_email("jane.doe@example.co.jp") == "j***@e***.co.jp"
    first = email_hash("key-one", "Jane@Example.com")
    assert first == email_hash("key-one", "jane@example.com")
    assert first != email_hash("key-two", "jane@example.com")
    assert len(first) == 64 and "jane" not in first


class LoopbackDns:
    """A stand-in for the internet's DNS (which tests cannot reach): a UDP server on loopback.

    ``zones`` maps a domain to "mx", "nullmx", "nxdomain", "servfail" or "silent" (never
    answers, so the resolver times out).
    """

    def __init__(self, zones: dict[str, str]):
        self.zones = zones
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def resolver(self) -> dns.resolver.Resolver:
        """A dnspython resolver that asks this server only."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        return resolver

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = self._answer(dns.message.from_wire(data))
            if reply is not None:
                self.sock.sendto(reply.to_wire(), peer)

    def _answer(self, query):
        question = query.question[0]
        name = question.name.to_text().rstrip(".")
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        behaviour = self.zones.get(name, "nxdomain")
        if behaviour == "silent":
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if behaviour == "nxdomain":
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif behaviour == "servfail":
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif kind == "MX":
            target = "." if behaviour == "nullmx" else f"mail.{name}."
            preference = 0 if behaviour == "nullmx" else 10
            reply.answer.append(
                dns.rrset.from_text(question.name, 300, "IN", "MX", f"{preference} {target}")
            )
        return reply


def _check(address, dns_server, timeout=0.5):
    return normalize_email(
        address,
        check_deliverability=True,
        allow_smtputf8=False,
        dns_timeout=timeout,
        resolver=dns_server.resolver(),
    )


@pytest.mark.nodb
def test_dns_check_accepts_mx_and_refuses_missing_or_null_mx_domains():
    zones = {"mx.example.com": "mx", "nullmx.example.com": "nullmx"}
    with LoopbackDns(zones) as server:
        assert _check("a@mx.example.com", server) == "a@mx.example.com"
        with pytest.raises(InvalidAddress, match="does not exist"):
            _check("a@gone.example.com", server)
        with pytest.raises(InvalidAddress, match="does not accept email"):
            _check("a@nullmx.example.com", server)
    assert ("mx.example.com", "MX") in server.queries


@pytest.mark.nodb
@pytest.mark.parametrize("behaviour", ["silent", "servfail"])
def test_dns_failure_or_timeout_never_turns_a_person_away(behaviour):
    with LoopbackDns({"slow.example.com": behaviour}) as server:
        assert _check("a@slow.example.com", server, timeout=0.3) == "a@slow.example.com"
    assert server.queries and server.queries[0] == ("slow.example.com", "MX")


@pytest.fixture
def app_config(app_config):
    # Many requests from one test client: the per-IP limit is tested in test_signup_limits.py.
    app_config["MAILER_SIGNUP_RATE_LIMIT"] = "100000/minute"
    return app_config


def test_corpora_through_the_form_no_500_and_nothing_stored_for_refusals(
    shared_dir, client, session
):
    validator_cases = _load(shared_dir, "email-validator-cases.json")
    isemail_cases = _load(shared_dir, "isemail-tests.json")
    cases = [(c["input"], validator_expectation(c, False)[0]) for c in validator_cases]
    cases += [(c["address"], isemail_expectation(c)[0]) for c in isemail_cases]
    accepted = 0
    for address, expected in cases:
        # Encoded by hand: a few corpus cases hold lone surrogates, which only a raw HTTP
        # client can send (as invalid UTF-8).
        body = urlencode({"email": address}, encoding="utf-8", errors="surrogatepass")
        response = client.post(
            "/subscribe", data=body, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == (200 if expected else 422), address
        if not expected:
            assert 'id="email-error"' in response.get_data(as_text=True), address
        accepted += expected
    run_signup_job(session)
    stored = session.query(Subscriber).count()
    # Distinct mailboxes only: some corpus cases are the same address in other spellings.
    assert 0 < stored <= accepted
    assert stored == len(
        {
            normalize_email(
                a, check_deliverability=False, allow_smtputf8=False, dns_timeout=1
            ).lower()
            for a, ok in cases
            if ok
        }
    )


def test_json_refusal_is_422_with_a_message(client, session):
    response = client.post(
        "/subscribe",
        json={"email": "Jane <jane@example.com>"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_email"
    assert "angle brackets" in body["message"]
    run_signup_job(session)
    assert session.query(Subscriber).count() == 0


@pytest.mark.parametrize(
    ("behaviour", "status"), [("silent", 200), ("servfail", 200), ("mx", 200), ("nxdomain", 422)]
)
def test_signup_with_the_dns_check_on(app, client, session, behaviour, status):
    with LoopbackDns({"mail.example.net": behaviour}) as server:
        app.config.update(
            MAILER_CHECK_DELIVERABILITY=True,
            MAILER_DNS_TIMEOUT=0.3,
            MAILER_DNS_NAMESERVERS=f"127.0.0.1#{server.port}",
        )
        response = client.post("/subscribe", data={"email": "person@mail.example.net"})
    assert response.status_code == status
    assert server.queries[0] == ("mail.example.net", "MX")
    run_signup_job(session)
    stored = [s.email for s in session.query(Subscriber)]
    assert stored == (["person@mail.example.net"] if status == 200 else [])
    if status == 422:
        assert "does not exist" in response.get_data(as_text=True)


@pytest.mark.nodb
def test_nameserver_setting():
    from mailer.subscriptions.addresses import resolver_for

    assert resolver_for("") is None
    resolver = resolver_for("127.0.0.1#5353, ::1")
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353),
        ("::1", 53),
    ]
    with pytest.raises(ValueError, match="bad port"):
        resolver_for("127.0.0.1#dns")
