"""
Tests for pymta.remote.mtastsfetch: policy fetches from a real HTTPS server
on 127.0.0.1 with a test CA (twisted.web), host names from a fake resolver.
"""

from __future__ import annotations

import os

from twisted.internet import defer, protocol, reactor, ssl
from twisted.trial import unittest
from twisted.web import resource, server

from pymta.remote.mtastsfetch import FetchError, PolicyFetcher, policy_url
from tests.remote.fakes import FakeResolver
from tests.smtpd.tlsutil import make_certificate

BODY = b"version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n"


class PolicyResource(resource.Resource):
    """Serves C{/.well-known/mta-sts.txt} as told: status, media type, body, streamed in pieces or not."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.code = 200
        self.media = b"text/plain; charset=utf-8"
        self.body = BODY
        self.streamed = False
        self.paths: list[bytes] = []
        self.hosts: list[bytes | None] = []

    def render_GET(self, request: server.Request) -> bytes | int:
        self.paths.append(request.path)
        self.hosts.append(request.getHeader(b"host"))
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", self.media)
        if self.code in (301, 302):
            request.setHeader(b"location", b"https://elsewhere.test/policy.txt")
        if not self.streamed:
            return self.body
        for start in range(0, len(self.body), 4096):
            request.write(self.body[start:start + 4096])
        request.finish()
        return server.NOT_DONE_YET


class FetchTests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.site_resource = PolicyResource()
        self.ca_file = self.serve("mta-sts.example.test")
        self.resolver = FakeResolver(hosts={"mta-sts.example.test": ["127.0.0.1"]})

    def serve(self, hostname: str) -> str:
        cert, key = make_certificate(hostname, ca=True, days=2)
        site = server.Site(self.site_resource)
        site.noisy = False
        listening = reactor.listenSSL(0, site, ssl.PrivateCertificate.loadPEM(key + cert).options(),
                                      interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(cert)
        return path

    def fetch(self, timeout: float = 10.0) -> defer.Deferred:
        return PolicyFetcher(reactor, self.resolver, port=self.port, timeout=timeout).fetch("example.test", self.ca_file)

    @defer.inlineCallbacks
    def fails(self, reason: str, timeout: float = 10.0) -> defer.Generator:
        error = yield self.assertFailure(self.fetch(timeout), FetchError)
        self.assertIn(reason, str(error))

    @defer.inlineCallbacks
    def test_policy_fetched(self) -> defer.Generator:
        body = yield self.fetch()
        self.assertEqual(body, BODY)
        self.assertEqual(self.site_resource.paths, [b"/.well-known/mta-sts.txt"])
        self.assertEqual(self.site_resource.hosts, [b"mta-sts.example.test"])
        self.assertEqual(policy_url("example.test"), "https://mta-sts.example.test/.well-known/mta-sts.txt")

    def test_redirect_not_followed(self) -> defer.Deferred:
        self.site_resource.code = 301
        return self.fails("HTTP status 301 (a redirect, which MTA-STS does not follow)")

    def test_not_found(self) -> defer.Deferred:
        self.site_resource.code = 404
        return self.fails("HTTP status 404 (not 200)")

    def test_media_type(self) -> defer.Deferred:
        self.site_resource.media = b"text/html"
        return self.fails("media type 'text/html', not text/plain")

    def test_too_long(self) -> defer.Deferred:
        self.site_resource.body = BODY + b"#" * 70000
        return self.fails("the policy is longer than 65536 bytes")

    def test_too_long_without_length(self) -> defer.Deferred:
        self.site_resource.body = BODY + b"#" * 70000
        self.site_resource.streamed = True  # chunked: the limit is applied while reading
        return self.fails("the policy is longer than 65536 bytes")

    def test_untrusted_certificate(self) -> defer.Deferred:
        with open(self.ca_file, "wb") as f:
            f.write(make_certificate("mta-sts.example.test", ca=True)[0])  # another CA
        return self.fails("certificate verify failed")

    def test_certificate_for_another_name(self) -> defer.Deferred:
        self.ca_file = self.serve("www.example.test")
        return self.fails("the web server's certificate is not valid for its name")

    def test_no_address(self) -> defer.Deferred:
        self.resolver = FakeResolver()
        return self.fails("no address for mta-sts.example.test")

    def test_silent_server_times_out(self) -> defer.Deferred:
        silent = protocol.ServerFactory.forProtocol(protocol.Protocol)
        listening = reactor.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.port = listening.getHost().port
        return self.fails("timed out", timeout=0.5)
