"""
A tiny authoritative DNS server on 127.0.0.1 for tests (twisted.names).

    server = yield start_dns_server({b"example.test": [tdns.Record_MX(10, b"mx.example.test")], ...})
    resolver = server.dnspython_resolver()

Names outside C{zone} are answered REFUSED, which dnspython reports as
C{NoNameservers} (a temporary failure for pymta).
"""

from __future__ import annotations

import dns.resolver
from twisted.internet import defer, reactor
from twisted.names import authority, server
from twisted.names import dns as tdns


class DictAuthority(authority.FileAuthority):
    """An authority for one zone whose records come from a dict."""

    def __init__(self, zone: bytes, records: dict[bytes, list[object]]) -> None:
        self._zone_records = records
        self._zone = zone
        super().__init__(None)

    def loadFile(self, filename: object) -> None:
        zone = self._zone
        self.soa = (
            zone,
            tdns.Record_SOA(mname=b"ns." + zone, rname=b"root." + zone, serial=1, minimum=60, ttl=60),
        )
        self.records = {zone.lower(): [self.soa[1]]}
        for name, rrs in self._zone_records.items():
            self.records.setdefault(name.lower(), []).extend(rrs)


class DNSTestServer:
    def __init__(self, zone: bytes, records: dict[bytes, list[object]]) -> None:
        self.authority = DictAuthority(zone, records)
        factory = server.DNSServerFactory(authorities=[self.authority])
        factory.noisy = False
        for attempt in range(20):
            self.udp = reactor.listenUDP(0, tdns.DNSDatagramProtocol(factory), interface="127.0.0.1")
            self.port = self.udp.getHost().port
            try:
                self.tcp = reactor.listenTCP(self.port, factory, interface="127.0.0.1")
                return
            except Exception:
                self.udp.stopListening()
        raise RuntimeError("no port free for both UDP and TCP")

    def dnspython_resolver(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = lifetime
        r.timeout = lifetime
        return r

    def stop(self) -> defer.Deferred:
        return defer.gatherResults([defer.maybeDeferred(self.udp.stopListening), defer.maybeDeferred(self.tcp.stopListening)])
