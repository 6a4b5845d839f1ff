"""
DANE end to end against real DNS: NSD serves a zone signed with ldns
(TLSA records included) and an unsigned one; Unbound validates (its trust
anchor is the signed zone's key) and is declared C{validating} in
control/resolvers.  The remote channel resolves through it with its own
resolvers (no fakes) and delivers to an SMTP server on 127.0.0.1 with
real TLS:

  - good.dane.test: the TLSA record matches the server's certificate: delivered;
  - bad.dane.test: it does not: deferred with 4.7.5 before MAIL, and logged;
  - bogus.dane.test: the TLSA record was changed after signing, Unbound
    answers SERVFAIL: deferred with 4.7.5, the server is not contacted;
  - plain.test: unsigned, a TLSA record that does not match is not used:
    delivered with opportunistic TLS.

The channel runs in the test process: in C{twistd pymta} every 127.0.0.x
address is this machine's (the MX self check), so no MX can point at a
test server there.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.remote.channel import RemoteChannel
from pymta.remote.danematch import DANE_EE
from tests.authdns import start_nsd
from tests.remote.danecerts import issue, server_options
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import ScriptedServerFactory, listen
from tests.validdns import sign_zone, start_unbound

SIGNED = """$ORIGIN dane.test.
@ 3600 IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 300
@ 3600 IN NS ns.dane.test.
ns 3600 IN A 127.0.0.1
good 300 IN MX 10 mx1.dane.test.
bad 300 IN MX 10 mx2.dane.test.
bogus 300 IN MX 10 mx3.dane.test.
mx1 300 IN A 127.0.0.1
mx2 300 IN A 127.0.0.1
mx3 300 IN A 127.0.0.1
{good}
{bad}
{bogus}
"""

PLAIN = """$ORIGIN plain.test.
@ 3600 IN SOA ns.plain.test. hostmaster.plain.test. 1 3600 600 86400 300
@ 3600 IN NS ns.plain.test.
ns 3600 IN A 127.0.0.1
@ 300 IN MX 10 mx.plain.test.
mx 300 IN A 127.0.0.1
{tlsa}
"""


class LiveDaneTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.factory = ScriptedServerFactory()
        leaf, stranger = issue("mx1.dane.test"), issue("stranger.test")
        self.factory.tls_options = server_options(leaf)
        listening = listen(self.factory)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        name = f"_{port}._tcp.mx{{}}"
        zone = SIGNED.format(good=leaf.zone_line(name.format(1), DANE_EE), bad=stranger.zone_line(name.format(2), DANE_EE),
                             bogus=leaf.zone_line(name.format(3), DANE_EE))
        signed = sign_zone(self, "dane.test", zone)
        if signed is None:
            raise unittest.SkipTest("ldns-keygen and ldns-signzone (Debian ldnsutils) are not available")
        # the bogus record: its data changed after it was signed
        line = re.search(rf"^_{port}\._tcp\.mx3\.dane\.test\.\s.*TLSA\s+3 1 1 ([0-9A-Fa-f]+)$", signed.text, re.M)
        assert line is not None, signed.text
        signed.text = signed.text.replace(line.group(0), line.group(0)[:-4] + ("0000" if line.group(0)[-4:] != "0000" else "1111"))
        plain = PLAIN.format(tlsa=stranger.zone_line(f"_{port}._tcp.mx", DANE_EE))
        nsd_port = start_nsd(self, {"dane.test": signed.text, "plain.test": plain})
        if nsd_port is None:
            raise unittest.SkipTest("nsd is not available")
        unbound_port = start_unbound(self, nsd_port, [signed], {"plain.test": None})
        if unbound_port is None:
            raise unittest.SkipTest("unbound is not available")
        self.root = make_root(self.mktemp(), {"smtproutes": f".dane.test::{port}\nplain.test::{port}",
                                              "resolvers": f"127.0.0.1:{unbound_port} validating"})
        self.channel = RemoteChannel(self.root, reader(self.root), reactor=reactor, is_own_address=lambda a: False)
        self.addCleanup(self.channel.stop)
        self.logged: list[str] = []
        observer = lambda event: self.logged.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def deliver(self, domain: str) -> Any:
        return self.channel.deliver(job(self.root, [f"bob@{domain}"]))

    @defer.inlineCallbacks
    def test_dane(self) -> defer.Generator:
        self.assertTrue(self.channel.dane.enabled)
        [good] = yield self.deliver("good.dane.test")
        self.assertEqual(good.status, SUCCESS, good.text)
        self.assertTrue(self.factory.sessions[-1].tls)
        self.assertTrue(any("DANE: mx1.dane.test has 1 usable TLSA records of 1" in line for line in self.logged))

        sessions = len(self.factory.sessions)
        [bad] = yield self.deliver("bad.dane.test")
        self.assertEqual(bad.status, DEFERRAL)
        self.assertEqual(bad.text, "TLS session with 127.0.0.1 failed: TLSA records of mx2.dane.test do not match "
                                   "its certificate. (#4.7.5)\n")
        self.assertEqual(len(self.factory.sessions), sessions + 1)
        self.assertFalse(any(c.startswith(b"MAIL") for c in self.factory.sessions[-1].commands))

        sessions = len(self.factory.sessions)
        [bogus] = yield self.deliver("bogus.dane.test")
        self.assertEqual(bogus.status, DEFERRAL)
        self.assertTrue(bogus.text.startswith("The TLSA lookup of _"), bogus.text)
        self.assertIn("._tcp.mx3.dane.test failed", bogus.text)
        self.assertIn("(#4.7.5)", bogus.text)
        self.assertEqual(len(self.factory.sessions), sessions)
        self.assertTrue(any("DANE: TLSA lookup of" in line and "not trying mx3.dane.test" in line
                            for line in self.logged))

        [plain] = yield self.deliver("plain.test")
        self.assertEqual(plain.status, SUCCESS, plain.text)
        self.assertTrue(self.factory.sessions[-1].tls)
