# -*- test-case-name: tests.senderauth.test_lookups -*-
"""
The DNS questions of one sender check, asked from a worker thread.

pyspf, dkimpy and authheaders ask DNS synchronously; they run on a worker
thread (L{pymta.senderauth.verifier}) and ask through one L{Lookups}: a
dnspython resolver (shared by all checks, so its TTL-honouring cache is
too) with one deadline for the whole check.  Each question may take
C{per_query} seconds at most and never more than is left; once the
deadline has passed every question fails at once.  Answers are kept for
the rest of the check.

A name that does not exist, or has no record of the type, is an empty
answer; a time-out or a server failure is L{LookupTemporary}.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

__all__ = ["LookupTemporary", "DNSLookups", "Lookups", "PER_QUERY"]

#: the most one question may take
PER_QUERY = 5.0


class LookupTemporary(Exception):
    """DNS did not answer now (time-out, server failure, the check's deadline passed)."""


class DNSLookups(Protocol):
    """What the checks ask of DNS (L{Lookups}, or a fake in tests)."""

    def records(self, name: str, rdtype: str) -> list[Any]:
        """The records (dnspython rdata) of C{name}; C{[]} when there are none; L{LookupTemporary}."""

    def txt(self, name: str) -> list[bytes]:
        """The TXT records of C{name}, the strings of each joined."""


class Lookups:
    """L{DNSLookups} through a dnspython resolver, with a deadline (monotonic seconds)."""

    def __init__(self, resolver: dns.resolver.Resolver, deadline: float, per_query: float = PER_QUERY,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._deadline = deadline
        self._per_query = per_query
        self._now = now
        self._answers: dict[tuple[str, str], list[Any]] = {}

    def records(self, name: str, rdtype: str) -> list[Any]:
        key = (name.rstrip(".").lower(), rdtype.upper())
        if key not in self._answers:
            self._answers[key] = self._ask(*key)
        return self._answers[key]

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.records(name, "TXT")]

    def _ask(self, name: str, rdtype: str) -> list[Any]:
        left = self._deadline - self._now()
        if left <= 0:
            raise LookupTemporary(f"{rdtype} {name}: no time left for DNS")
        try:
            qname = dns.name.from_text(name + ".")
            answer = self._resolver.resolve(qname, dns.rdatatype.from_text(rdtype), search=False,
                                            lifetime=min(self._per_query, left))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel, UnicodeError, ValueError):
            return []  # no such name can exist
        except dns.exception.Timeout:
            raise LookupTemporary(f"{rdtype} {name}: DNS timed out") from None
        except dns.exception.DNSException as e:
            raise LookupTemporary(f"{rdtype} {name}: {type(e).__name__}") from None
        except OSError as e:
            raise LookupTemporary(f"{rdtype} {name}: network error: {e}") from None
        return list(answer)
