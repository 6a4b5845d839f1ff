# -*- test-case-name: tests.test_dns -*-
"""
DNS lookups that never block the reactor.

L{DNSResolver} runs dnspython's synchronous C{dns.resolver.Resolver} on a
dedicated, bounded thread pool and hands results back as Deferreds.  It is
the one DNS interface of pymta: remote delivery uses L{DNSResolver.mx} and
L{DNSResolver.addresses}, smtpd's DNSBL checks use L{DNSResolver.a} and
L{DNSResolver.txt}.

Outcomes are mapped to mail semantics:

  - an answer: a list (possibly empty when the name exists but has no
    record of that type - dnspython's C{NoAnswer});
  - L{DNSPermanentError}: the name does not exist (NXDOMAIN, YXDOMAIN) or is
    not a valid domain name;
  - L{DNSTemporaryError}: timeouts, SERVFAIL/REFUSED from every server, no
    usable nameserver, CNAME chains that do not end.

dnspython follows CNAME chains and retries a truncated UDP answer over TCP
by itself.  A and AAAA are always asked as two separate queries, never ANY.

A null MX (RFC 7505: one MX record with preference 0 and exchange C{.}) is
returned by L{DNSResolver.mx} as C{[(0, NULL_MX)]} with C{NULL_MX == ""};
L{is_null_mx} tells callers to bounce.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Protocol, TypeVar

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from pymta.resolvers import make_resolver

__all__ = [
    "DNSError",
    "DNSPermanentError",
    "DNSTemporaryError",
    "NULL_MX",
    "is_null_mx",
    "ip_literal",
    "Resolver",
    "DNSResolver",
]

#: the host of a null MX record (RFC 7505)
NULL_MX = ""

T = TypeVar("T")


class DNSError(Exception):
    """A lookup did not give an answer; C{name} and C{rdtype} say which."""

    def __init__(self, name: str, rdtype: str, reason: str) -> None:
        super().__init__(f"{rdtype} lookup of {name!r}: {reason}")
        self.name = name
        self.rdtype = rdtype
        self.reason = reason


class DNSPermanentError(DNSError):
    """The name does not exist (NXDOMAIN) or cannot be a domain name."""


class DNSTemporaryError(DNSError):
    """No answer right now: timeout, SERVFAIL, no usable nameserver."""


def is_null_mx(records: list[tuple[int, str]]) -> bool:
    """True when an MX answer says the domain accepts no mail (RFC 7505)."""
    return any(host == NULL_MX for _, host in records)


def ip_literal(text: str) -> str | None:
    """
    The address in C{text} when it is an IP literal (C{1.2.3.4},
    C{[1.2.3.4]}, C{[IPv6:2001:db8::1]}, C{[2001:db8::1]}), else None.
    """
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
        if candidate[:5].lower() == "ipv6:":
            candidate = candidate[5:]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class Resolver(Protocol):
    """What pymta asks of DNS.  L{DNSResolver} is the real one; tests use fakes."""

    def mx(self, domain: str) -> "Deferred[list[tuple[int, str]]]":
        """(preference, host) pairs as published, hosts without the final dot."""

    def addresses(self, host: str) -> "Deferred[list[str]]":
        """IPv4 then IPv6 addresses of C{host} (A and AAAA queried separately)."""

    def a(self, name: str) -> "Deferred[list[str]]":
        """A records of C{name}."""

    def txt(self, name: str) -> "Deferred[list[str]]":
        """TXT records of C{name}, each record's strings joined."""


def _host_text(name: dns.name.Name) -> str:
    """A dnspython name as pymta writes host names: lowercase, no final dot, C{""} for the root."""
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else NULL_MX


class DNSResolver:
    """
    dnspython's resolver on a dedicated thread pool.

    @param reactor: the reactor results are delivered in (default: the global one).
    @param threadpool: the pool lookups run on; by default a private
        C{ThreadPool(0, maxthreads, "pymta-dns")} started on first use and
        stopped by L{stop} or at reactor shutdown.
    @param resolver: a configured C{dns.resolver.Resolver}; by default one
        asking C{nameservers} (the servers of C{control/resolvers},
        L{pymta.resolvers.configured_nameservers}), or when that is None
        the servers of /etc/resolv.conf (127.0.0.1 when that file is
        missing), with an LRU cache of 10000 answers kept for their TTL.
    @param lifetime: seconds one lookup may take in all (retries included).
    """

    def __init__(
        self,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
        resolver: dns.resolver.Resolver | None = None,
        lifetime: float = 30.0,
        maxthreads: int = 8,
        nameservers: tuple[tuple[str, int], ...] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self._own_pool = threadpool is None
        self._maxthreads = maxthreads
        self._pool = threadpool if threadpool is not None else ThreadPool(0, maxthreads, "pymta-dns")
        self._started = False
        self._shutdown_trigger: Any = None
        if resolver is None:
            resolver = make_resolver(nameservers)
        self._resolver = resolver
        self._lifetime = lifetime

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        """Start the private thread pool (done automatically on first lookup)."""
        if self._started:
            return
        self._started = True
        if self._own_pool:
            if self._pool.joined:  # stopped before: a fresh pool
                self._pool = ThreadPool(0, self._maxthreads, "pymta-dns")
            self._pool.start()
            if IReactorCore.providedBy(self._reactor):
                self._shutdown_trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        """Stop the private thread pool; lookups in flight finish first."""
        if not self._started:
            return
        self._started = False
        if self._shutdown_trigger is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass
            self._shutdown_trigger = None
        if self._own_pool:
            self._pool.stop()

    # -- lookups -----------------------------------------------------------

    def mx(self, domain: str) -> "Deferred[list[tuple[int, str]]]":
        """
        MX records of C{domain} as (preference, host), in published order.
        C{[]} when the domain exists without MX; C{[(0, NULL_MX)]} for a null MX.
        """

        def convert(answer: Any) -> list[tuple[int, str]]:
            records = [(int(r.preference), _host_text(r.exchange)) for r in answer]
            if any(host == NULL_MX for _, host in records):
                return [(0, NULL_MX)]
            return records

        return self._lookup(domain, "MX", convert)

    def addresses(self, host: str) -> "Deferred[list[str]]":
        """
        IPv4 then IPv6 addresses of C{host}.  NXDOMAIN for both is permanent;
        a temporary failure of either query is temporary unless the other
        one found addresses.
        """
        literal = ip_literal(host)
        if literal is not None:
            return defer.succeed([literal])
        d4 = self._lookup(host, "A", _address_texts)
        d6 = self._lookup(host, "AAAA", _address_texts)
        both = defer.DeferredList([d4, d6], consumeErrors=True)
        return both.addCallback(self._merge_addresses)

    @staticmethod
    def _merge_addresses(results: list[tuple[bool, Any]]) -> list[str]:
        found: list[str] = []
        errors: list[DNSError] = []
        for ok, value in results:
            if ok:
                found.extend(value)
            else:
                error = value.value
                if not isinstance(error, DNSError):
                    value.raiseException()
                errors.append(error)
        if found:
            return found
        temporary = [e for e in errors if isinstance(e, DNSTemporaryError)]
        if temporary:
            raise temporary[0]
        if len(errors) == 2:
            raise errors[0]
        return []

    def a(self, name: str) -> "Deferred[list[str]]":
        """A records of C{name} (C{[]} when the name exists without one)."""
        return self._lookup(name, "A", _address_texts)

    def aaaa(self, name: str) -> "Deferred[list[str]]":
        """AAAA records of C{name}."""
        return self._lookup(name, "AAAA", _address_texts)

    def txt(self, name: str) -> "Deferred[list[str]]":
        """TXT records of C{name}; the strings of one record are joined, bytes decoded leniently."""

        def convert(answer: Any) -> list[str]:
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

        return self._lookup(name, "TXT", convert)

    def ptr(self, address: str) -> "Deferred[list[str]]":
        """Host names of an IPv4 or IPv6 address (reverse lookup)."""
        try:
            name = dns.reversename.from_address(address).to_text()
        except (ValueError, dns.exception.SyntaxError):
            return defer.fail(DNSPermanentError(address, "PTR", "not an IP address"))
        return self._lookup(name, "PTR", lambda answer: [_host_text(r.target) for r in answer])

    # -- machinery ---------------------------------------------------------

    def _lookup(self, name: str, rdtype: str, convert: Callable[[Any], T]) -> "Deferred[T]":
        self.start()
        return deferToThreadPool(self._reactor, self._pool, self._blocking_lookup, name, rdtype, convert)

    def _blocking_lookup(self, name: str, rdtype: str, convert: Callable[[Any], T]) -> T:
        """Runs in a pool thread: one query, its outcome mapped to pymta's errors."""
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".") if name not in ("", ".") else None
        except (dns.exception.DNSException, UnicodeError, ValueError) as e:
            raise DNSPermanentError(name, rdtype, f"not a valid domain name ({e})") from None
        if qname is None:
            raise DNSPermanentError(name, rdtype, "empty domain name")
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False, lifetime=self._lifetime)
        except dns.resolver.NoAnswer:
            return convert([])
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN) as e:
            raise DNSPermanentError(name, rdtype, _short(e)) from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
            raise DNSTemporaryError(name, rdtype, _short(e)) from None
        except dns.exception.DNSException as e:
            # e.g. a CNAME chain longer than dnspython follows, malformed answers
            raise DNSTemporaryError(name, rdtype, _short(e)) from None
        except OSError as e:
            raise DNSTemporaryError(name, rdtype, f"network error: {e}") from None
        return convert(answer)


def _address_texts(answer: Any) -> list[str]:
    return [str(ipaddress.ip_address(r.address)) for r in answer]


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
