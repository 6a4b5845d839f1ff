"""
MTA-STS against real components: a real authoritative DNS server (NSD,
L{tests.authdns}) serves the MX, A and C{_mta-sts} TXT records and pymta
resolves through it (control/resolvers); a real HTTPS server with a test
CA serves the policies; SMTP servers on 127.0.0.x take the mail.  The
remote channel is pymta's own; only the policy server's port is set by
the test (443 otherwise), and the MX self check is off (every test
address is a loopback one, which pymta counts as its own).
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer, reactor, ssl
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web import resource, server

from pymta.interfaces import DEFERRAL, SUCCESS
from pymta.remote.channel import RemoteChannel
from pymta.remote.mtastscache import cache_path
from pymta.remote.mtastsfetch import PolicyFetcher
from tests.acmecerts import Issued, issue, make_ca
from tests.authdns import start_nsd
from tests.remote.helpers import job, make_root, reader
from tests.remote.smtpserver import ScriptedServerFactory, listen

ZONE = """$ORIGIN sts.test.
@ 3600 IN SOA ns.sts.test. hostmaster.sts.test. 1 3600 600 86400 300
@ 3600 IN NS ns.sts.test.
ns 3600 IN A 127.0.0.1
mx 300 IN A 127.0.0.4
mx2 300 IN A 127.0.0.5
listed 300 IN MX 10 mx.sts.test.
unlisted 300 IN MX 10 mx.sts.test.
testing 300 IN MX 10 mx.sts.test.
badcert 300 IN MX 10 mx2.sts.test.
"""
DOMAINS = ("listed", "unlisted", "testing", "badcert")
POLICIES = {
    "listed": b"version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
    "unlisted": b"version: STSv1\nmode: enforce\nmx: mail.elsewhere.test\nmx: *.elsewhere.test\nmax_age: 86400\n",
    "testing": b"version: STSv1\nmode: testing\nmx: mail.elsewhere.test\nmax_age: 86400\n",
    "badcert": b"version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 86400\n",
}


class Policies(resource.Resource):
    """Each C{mta-sts.DOMAIN.sts.test}'s policy, chosen by the Host field."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        host = (request.getHeader(b"host") or b"").decode()
        request.setHeader(b"content-type", b"text/plain")
        return POLICIES[host.split(".")[1]]


class LiveMTASTSTests(unittest.TestCase):
    timeout = 120

    def smtp(self, interface: str, leaf: Issued) -> tuple[ScriptedServerFactory, int]:
        factory = ScriptedServerFactory()
        factory.tls_options = ssl.PrivateCertificate.loadPEM(leaf.key_pem() + leaf.cert_pem()).options()
        listening = listen(factory, interface)
        self.addCleanup(listening.stopListening)
        return factory, listening.getHost().port

    @defer.inlineCallbacks
    def test_enforce_and_testing_through_real_dns_and_https(self) -> defer.Generator:
        zone = ZONE + "".join(f'_mta-sts.{d} 300 IN TXT "v=STSv1; id=2024{i}"\nmta-sts.{d} 300 IN A 127.0.0.1\n'
                              for i, d in enumerate(DOMAINS))
        dns_port = start_nsd(self, {"sts.test": zone})
        if dns_port is None:
            raise unittest.SkipTest("NSD cannot be installed here")
        ca = make_ca("pymta MTA-STS test CA")
        web_leaf = issue(ca, [f"mta-sts.{d}.sts.test" for d in DOMAINS])
        site = server.Site(Policies())
        site.noisy = False
        https = reactor.listenSSL(0, site, ssl.PrivateCertificate.loadPEM(web_leaf.key_pem() + web_leaf.cert_pem())
                                  .options(), interface="127.0.0.1")
        self.addCleanup(https.stopListening)
        mx, mx_port = self.smtp("127.0.0.4", issue(ca, ["mx.sts.test"]))
        mx2, mx2_port = self.smtp("127.0.0.5", issue(ca, ["mx.sts.test"]))  # not valid for mx2.sts.test

        base = self.mktemp()
        ca_file = os.path.abspath(base + "-ca.pem")
        with open(ca_file, "wb") as f:
            f.write(ca.cert_pem())
        routes = "".join(f"{d}.sts.test::{mx2_port if d == 'badcert' else mx_port}\n" for d in DOMAINS)
        root = make_root(base, {"resolvers": f"127.0.0.1:{dns_port}", "mtasts": f"ca {ca_file}",
                                "smtproutes": routes})
        channel = RemoteChannel(root, reader(root), reactor=reactor, is_own_address=lambda a: False)
        self.addCleanup(channel.stop)
        channel.mtasts.discovery.fetch = PolicyFetcher(reactor, channel.resolver, port=https.getHost().port).fetch

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        recipients = [f"bob@{d}.sts.test" for d in DOMAINS]
        listed, unlisted, testing, badcert = yield channel.deliver(job(root, recipients))

        # enforce, MX in the policy: delivered over TLS verified for mx.sts.test
        self.assertEqual(listed.status, SUCCESS, listed.text)
        # enforce, MX not in the policy: deferred with 4.7.5, nothing sent to it
        self.assertEqual((unlisted.status, unlisted.text), (DEFERRAL, "MTA-STS policy of unlisted.sts.test: "
                                                            "mx.sts.test is not in the policy. (#4.7.5)\n"))
        # testing: the same mismatch is logged and the mail delivered
        self.assertEqual(testing.status, SUCCESS, testing.text)
        self.assertEqual([len(s.data) for s in mx.sessions], [1, 1])
        self.assertTrue(all(s.tls for s in mx.sessions))
        # enforce, MX listed but its certificate is not for its name: deferred, nothing sent
        self.assertEqual(badcert.status, DEFERRAL)
        self.assertTrue(badcert.text.startswith("MTA-STS policy of badcert.sts.test requires TLS with a valid "
                                                "certificate: TLS session with 127.0.0.5 failed"), badcert.text)
        self.assertTrue(badcert.text.endswith("(#4.7.5)\n"), badcert.text)
        self.assertEqual([s.data for s in mx2.sessions], [[]])

        logged = [formatEvent(e) for e in events if e.get("log_namespace") == "pymta.remote"]
        self.assertTrue(any("msg 1" in t and "MTA-STS policy of unlisted.sts.test: mx.sts.test is not in the policy"
                            in t for t in logged), logged)
        self.assertTrue(any("MTA-STS policy of testing.sts.test (testing): mx.sts.test is not in the policy; "
                            "delivering anyway" in t for t in logged), logged)
        self.assertTrue(any("MTA-STS policy of listed.sts.test (TXT id 20240): mode enforce, max_age 86400, "
                            "mx mx.sts.test" in t for t in logged), logged)
        channel.mtasts.stop()  # what channel.stop does first: the cache, written in batches, is written now
        with open(cache_path(root)) as f:
            self.assertEqual(sorted(json.load(f)["domains"]), sorted(f"{d}.sts.test" for d in DOMAINS))
