"""An in-memory resolver for unit tests (synchronous Deferreds)."""

from __future__ import annotations

from twisted.internet import defer

from pymta.dns import DNSPermanentError, DNSTemporaryError, ip_literal


class FakeResolver:
    """
    C{mx} and C{hosts} map names to answers; an answer that is an exception
    class (DNSPermanentError / DNSTemporaryError) fails the lookup; names
    absent from both tables are NXDOMAIN.
    """

    def __init__(self, mx: dict | None = None, hosts: dict | None = None, txt: dict | None = None) -> None:
        self.mx_table = mx or {}
        self.hosts = hosts or {}
        self.txt_table = txt or {}
        self.queries: list[tuple[str, str]] = []

    def _answer(self, table: dict, name: str, rdtype: str, empty: object) -> defer.Deferred:
        self.queries.append((rdtype, name))
        name = name.lower()
        if name in table:
            value = table[name]
        elif name in self.mx_table or name in self.hosts or name in self.txt_table:
            value = empty
        else:
            return defer.fail(DNSPermanentError(name, rdtype, "NXDOMAIN"))
        if isinstance(value, type) and issubclass(value, Exception):
            return defer.fail(value(name, rdtype, "fake failure"))
        return defer.succeed(list(value))

    def mx(self, domain: str) -> defer.Deferred:
        return self._answer(self.mx_table, domain, "MX", [])

    def addresses(self, host: str) -> defer.Deferred:
        literal = ip_literal(host)
        if literal is not None:
            return defer.succeed([literal])
        return self._answer(self.hosts, host, "A", [])

    def a(self, name: str) -> defer.Deferred:
        return self._answer(self.hosts, name, "A", [])

    def txt(self, name: str) -> defer.Deferred:
        return self._answer(self.txt_table, name, "TXT", [])


__all__ = ["FakeResolver", "DNSPermanentError", "DNSTemporaryError"]
