"""Tests for pymta.metrics.web: the scrape page served over a StringTransport."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from pymta.metrics.web import metrics_site


class MetricsSiteTests(unittest.TestCase):
    def setUp(self) -> None:
        self.registry = CollectorRegistry()
        Counter("pymta_probe", "A counter for the test.", registry=self.registry).inc()
        self.problem: str | None = None
        self.site = metrics_site(self.registry, lambda: self.problem)
        self.site.doStart()
        self.addCleanup(self.site.doStop)
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def get(self, path: bytes) -> bytes:
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9100))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        protocol.dataReceived(b"GET " + path + b" HTTP/1.0\r\nHost: localhost\r\n\r\n")
        return transport.value()

    def test_scrape_is_not_logged(self) -> None:
        """A scrape every few seconds must not write an access log line into the mail log."""
        response = self.get(b"/metrics")
        self.assertIn(b"200 OK", response.split(b"\r\n", 1)[0])
        self.assertIn(b"pymta_probe_total 1.0", response)
        text = [formatEvent(event) for event in self.logged]
        self.assertEqual([line for line in text if "GET" in line or "/metrics" in line], [])

    def test_health(self) -> None:
        self.assertIn(b"ok\n", self.get(b"/healthz"))
        self.problem = "queue unreadable"
        response = self.get(b"/healthz")
        self.assertIn(b"503", response.split(b"\r\n", 1)[0])
        self.assertIn(b"queue unreadable", response)
