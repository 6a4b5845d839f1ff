"""Security review of the relay rules: addresses an open-relay probe sends to port 25."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import load_controls
from pymta.smtpd import policy
from tests.smtpd.helpers import make_root


class RelayProbes(SynchronousTestCase):
    def setUp(self) -> None:
        self.c = load_controls(make_root(self.mktemp(), rcpthosts="mx.example.org\n.virt.example"))

    def accepted(self, recipient: str) -> bool:
        return policy.rcpt_decision(self.c, recipient, relayclient=None, authenticated=False).recipient is not None

    def test_empty_domain_refused(self) -> None:
        """C{u@} has a domain (the empty one), which is not in rcpthosts: qmail-smtpd refuses it."""
        for probe in ("u@", "victim@elsewhere.example@", '"victim@elsewhere.example"@', "u%elsewhere.example@"):
            self.assertFalse(self.accepted(probe), probe)

    def test_no_at_sign_still_accepted(self) -> None:
        """Without any C{@} the queue appends envnoathost, a local name: accepted as in qmail."""
        self.assertTrue(self.accepted("postmaster"))

    def test_trailing_dot_and_case(self) -> None:
        self.assertTrue(self.accepted("u@MX.Example.ORG"))
        self.assertTrue(self.accepted("u@a.VIRT.example"))
        self.assertFalse(self.accepted("u@mx.example.org."))
        self.assertFalse(self.accepted("u@elsewhere.example."))

    def test_unicode_case_folding_is_ascii_only(self) -> None:
        """qmail lowercases ASCII only: the Kelvin sign must not match a listed C{k}."""
        c = load_controls(make_root(self.mktemp(), rcpthosts="kex.example"))
        d = policy.rcpt_decision(c, "u@\u212aex.example", relayclient=None, authenticated=False)
        self.assertIsNone(d.recipient)
        self.assertTrue(
            policy.rcpt_decision(c, "u@KEX.example", relayclient=None, authenticated=False).recipient is not None
        )

    def test_literals_and_tricks(self) -> None:
        for probe in (
            "u@[192.0.2.1]",
            "u%elsewhere.example@mx.example.org",
            "elsewhere.example!u@mx.example.org",
            "u@elsewhere.example@mx.example.org",
        ):
            self.assertFalse(self.accepted(probe), probe)

    def test_source_route_is_dropped_before_the_check(self) -> None:
        parsed = policy.parse_path("TO:<@mx.example.org,@a.example:u@elsewhere.example>")
        self.assertEqual(parsed.address, "u@elsewhere.example")
        self.assertFalse(self.accepted(parsed.address))
        quoted = policy.parse_path('TO:<"u@elsewhere.example"@mx.example.org>')
        self.assertFalse(self.accepted(quoted.address))


class NoDomainRelayTricks(SynchronousTestCase):
    """
    A recipient without C{@} gets C{@envnoathost} in the queue; with C{me} in
    percenthack, C{u%elsewhere} would then become remote relay, so the relay
    tricks refused for C{u%elsewhere@us} are refused without a domain too.
    """

    def test_percent_and_bang_without_domain_refused(self) -> None:
        from pymta.queue.routing import REMOTE, route_recipient

        c = load_controls(make_root(self.mktemp(), rcpthosts="mx.example.org", percenthack="mx.example.org"))
        self.assertEqual(route_recipient("u%elsewhere.example", c).channel, REMOTE)  # what acceptance would lead to
        for probe in ("u%elsewhere.example", "elsewhere.example!u"):
            d = policy.rcpt_decision(c, probe, relayclient=None, authenticated=False)
            self.assertIsNone(d.recipient, probe)
            self.assertEqual(d.reply, policy.REPLY_RCPTHOSTS)
        self.assertEqual(policy.rcpt_decision(c, "u%x", relayclient="", authenticated=False).recipient, "u%x")
        self.assertEqual(policy.rcpt_decision(c, "u%x", relayclient=None, authenticated=True).recipient, "u%x")


class ControlCharactersInAddresses(SynchronousTestCase):
    """
    Only LF ends a command line, so a CR (or another control character) can
    sit inside an address; it would reach the Return-Path and Delivered-To
    lines written into mailboxes (a bare CR is a line break to some mail
    readers: header injection).  Such addresses are refused.
    """

    def test_refused_in_mail_and_rcpt(self) -> None:
        from tests.smtpd.helpers import Session

        s = Session(make_root(self.mktemp(), rcpthosts="mx.example.org"))
        s.take()
        self.assertEqual(s.send(b"MAIL FROM:<a\rX-Injected: yes@b.example>\r\n"), [policy.REPLY_SYNTAX])
        self.assertEqual(s.send(b"MAIL FROM:<a\x1b@b.example>\r\n"), [policy.REPLY_SYNTAX])
        self.assertEqual(s.cmd("MAIL FROM:<a@b.example>"), ["250 ok"])
        self.assertEqual(s.send(b"RCPT TO:<u\rX-Injected: yes@mx.example.org>\r\n"), [policy.REPLY_SYNTAX])
        self.assertEqual(s.send(b"RCPT TO:<u\x7f@mx.example.org>\r\n"), [policy.REPLY_SYNTAX])
        self.assertEqual(s.cmd("RCPT TO:<u@mx.example.org>"), ["250 ok"])
        self.assertEqual(s.proto.recipients, ["u@mx.example.org"])
        s.close()


class ForwardConfirmedHostRules(SynchronousTestCase):
    """
    C{=host} rules in tcp.smtp (docs: C{=.partner.example:allow,RELAYCLIENT=""}):
    whoever controls the reverse zone of his own address can make its PTR say
    C{x.partner.example}, so a name counts only when it maps back to the
    client's address (tcpserver -p); otherwise the client has no name.
    """

    RULES = '=.good.example:allow,RELAYCLIENT=""\n:allow\n'

    def session(self, ptr, addresses):  # type: ignore[no-untyped-def]
        from twisted.internet import defer

        from pymta.dns import DNSPermanentError
        from tests.smtpd.helpers import Session

        class Resolver:
            def ptr(self, address):  # type: ignore[no-untyped-def]
                return defer.succeed(ptr.get(address, []))

            def addresses(self, host):  # type: ignore[no-untyped-def]
                if host not in addresses:
                    return defer.fail(DNSPermanentError(host, "A", "NXDOMAIN"))
                return defer.succeed(addresses[host])

        s = Session(make_root(self.mktemp()), rules=self.RULES, resolver=Resolver(), reverse_lookup_seconds=5)
        self.addCleanup(s.close)
        return s

    def test_spoofed_ptr_gets_no_relay(self) -> None:
        s = self.session({"192.0.2.7": ["mx.good.example."]}, {"mx.good.example": ["198.51.100.99"]})
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertIsNone(s.proto.relayclient)
        self.assertNotIn("TCPREMOTEHOST", s.proto.env)
        s2 = self.session({"192.0.2.7": ["mx.good.example."]}, {})
        self.assertEqual(s2.take(), ["220 mx.example.org ESMTP"])
        self.assertIsNone(s2.proto.relayclient)

    def test_confirmed_name_relays(self) -> None:
        s = self.session({"192.0.2.7": ["mx.good.example."]}, {"mx.good.example": ["2001:db8::1", "192.0.2.7"]})
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertEqual(s.proto.relayclient, "")
        self.assertEqual(s.proto.env["TCPREMOTEHOST"], "mx.good.example")
