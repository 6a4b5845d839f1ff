# -*- test-case-name: tests.senderauth.test_verifier -*-
"""
The asynchronous face of the sender checks: SPF at MAIL FROM, DKIM and
DMARC once the message is in.

pyspf, dkimpy and authheaders block, so each check runs on a worker
thread of a bounded pool of the verifier's own (the reactor never waits)
and asks DNS through L{pymta.senderauth.lookups.Lookups}: one shared
dnspython resolver with its answer cache, one deadline (C{timeout}) per
check.  A message's check asks for the From domains' DMARC policies
first, then verifies the signatures that can align with them, then the
others, each key lookup limited to L{PER_SIGNATURE}: a message cannot
spend the deadline on keys of slow domains of its own to keep its
policy from being read.  Should a check still not be back a little after its deadline (a
full pool), its Deferred fires with C{temperror} verdicts anyway.  The
deadline is fixed when the check is asked for: a worker that takes up a
check whose deadline has passed does not run it, and at most
L{MAX_WAITING} checks wait for a worker (one more is C{temperror} at
once).  L{SenderVerifier.stop} (a reload) never blocks the reactor.
Checks never errback: an unexpected error is logged and becomes
C{temperror}.

C{run} is the seam that runs a blocking function: the thread pool by
default, a synchronous call in unit tests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import dns.resolver
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from pymta.senderauth.dkimcheck import check_dkim
from pymta.senderauth.dmarccheck import DMARCVerdict, aligned_domains, check_dmarc, find_policies, from_domains, judge
from pymta.senderauth.lookups import PER_QUERY, DNSLookups, Lookups
from pymta.senderauth.settings import DEFAULT_TIMEOUT
from pymta.senderauth.spfcheck import SPFVerdicts, check_spf
from pymta.senderauth.verdict import TEMPERROR, Verdict

__all__ = ["SenderVerifier", "MessageVerdicts", "GRACE", "MAX_VERIFIED_BYTES", "PER_SIGNATURE", "MAX_WAITING"]

log = Logger()

#: seconds after a check's deadline before its answer is given up for
GRACE = 5.0
#: a larger message's signatures are not verified (C{dkim=policy}): dkimpy holds the message in memory
MAX_VERIFIED_BYTES = 32 * 1024 * 1024
#: the most the key lookup of one DKIM signature may take
PER_SIGNATURE = PER_QUERY
#: checks that may wait for a worker (beyond the busy ones); one more is C{temperror} at once
MAX_WAITING = 64
TOO_LARGE = Verdict("dkim", "policy", "message too large to verify")

Run = Callable[..., "defer.Deferred[Any]"]


class _Expired(Exception):
    """A check's deadline passed before a worker took it up: it is not run."""


class _Busy(Exception):
    """Too many checks wait for a worker: the new one is not queued."""


class _Stopped(Exception):
    """The verifier was stopped (a reload replaced it): it starts no threads again."""


def _skip_if_late(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise _Expired()


@dataclass(frozen=True)
class MessageVerdicts:
    dkim: tuple[Verdict, ...]
    dmarc: DMARCVerdict


class SenderVerifier:
    """
    @param resolver: the dnspython resolver all checks share (see L{pymta.resolvers.make_resolver}).
    @param receiver: our host name (C{control/me}), for SPF explanations.
    @param lookups: makes the L{DNSLookups} of one check from its deadline (tests give fakes).
    """

    def __init__(self, resolver: dns.resolver.Resolver | None, receiver: str, timeout: float = DEFAULT_TIMEOUT,
                 reactor: Any = None, run: Run | None = None, maxthreads: int = 8,
                 lookups: Callable[[float], DNSLookups] | None = None,
                 nameservers: tuple[tuple[str, int], ...] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.reactor = reactor
        self.receiver = receiver
        self.timeout = timeout
        self._resolver = resolver
        self.nameservers = nameservers  # what the resolver asks (None: the system's servers), for reloads
        self._lookups = lookups or (lambda deadline: Lookups(resolver, deadline))  # type: ignore[arg-type]
        self._pool: ThreadPool | None = None
        self._maxthreads = maxthreads
        self._run = run or self._in_thread
        self._stopped = False
        self._lock = threading.Lock()
        self._queued = 0  # checks handed to the pool and not yet done

    def _in_thread(self, function: Callable[..., Any], *args: Any) -> "defer.Deferred[Any]":
        if self._stopped:
            return defer.fail(_Stopped())
        with self._lock:
            if self._queued >= self._maxthreads + MAX_WAITING:
                return defer.fail(_Busy())
            self._queued += 1
        if self._pool is None:
            self._pool = ThreadPool(0, self._maxthreads, "pymta-senderauth")
            self._pool.start()
            if hasattr(self.reactor, "addSystemEventTrigger"):
                self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)

        def counted() -> Any:
            try:
                return function(*args)
            finally:
                with self._lock:
                    self._queued -= 1

        return deferToThreadPool(self.reactor, self._pool, counted)

    def stop(self) -> None:
        """
        Stop the worker threads (checks in flight finish first) without
        waiting for them: a thread of its own joins them, never the reactor.
        A stopped verifier starts no pool again: its checks are C{temperror}.
        """
        self._stopped = True
        pool, self._pool = self._pool, None
        if pool is not None:
            threading.Thread(target=pool.stop, name="pymta-senderauth-stop", daemon=True).start()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _guarded(self, d: "defer.Deferred[Any]", fallback: Callable[[str], Any], what: str) -> "defer.Deferred[Any]":
        def failed(failure: Failure) -> Any:
            if failure.check(defer.TimeoutError, defer.CancelledError, _Expired):
                return fallback(f"{what} took longer than {self.timeout:g}s")
            if failure.check(_Busy):
                return fallback(f"{what}: too many checks waiting")
            if failure.check(_Stopped):
                return fallback(f"{what}: checks stopped")
            log.failure("senderauth: {what} failed", failure, what=what)
            return fallback(f"{what}: internal error")

        d.addTimeout(self.timeout + GRACE, self.reactor)
        return d.addErrback(failed)

    def _deadline(self) -> float:
        """The deadline of a check submitted now."""
        return time.monotonic() + self.timeout

    def check_sender(self, ip: str, sender: str, helo: str | None) -> "defer.Deferred[SPFVerdicts]":
        """SPF of the HELO name and of C{sender} (C{""}: null sender) for a client at C{ip}."""

        deadline = self._deadline()

        def work() -> SPFVerdicts:
            _skip_if_late(deadline)
            return check_spf(self._lookups(deadline), ip, sender, helo, self.receiver)

        def fallback(reason: str) -> SPFVerdicts:
            mailfrom = None if not sender else Verdict("spf", TEMPERROR, reason, (("smtp.mailfrom", sender.rpartition("@")[2]),))
            return SPFVerdicts(Verdict("spf", TEMPERROR, reason), mailfrom, "")

        return self._guarded(defer.maybeDeferred(self._run, work), fallback, "SPF check")

    def check_message(self, message: bytes, size: int, spf: SPFVerdicts) -> "defer.Deferred[MessageVerdicts]":
        """DKIM and DMARC of C{message} (as stored, LF line ends; C{size} bytes in all, maybe more than given)."""

        deadline = self._deadline()

        def work() -> MessageVerdicts:
            _skip_if_late(deadline)
            domains = from_domains(message)
            if not domains:  # None (an address without a domain) or no From: nothing to look up
                dkims = check_dkim(self._lookups(deadline), message) if size <= MAX_VERIFIED_BYTES else [TOO_LARGE]
                return MessageVerdicts(tuple(dkims), check_dmarc(self._lookups(deadline), message, spf.for_dmarc, spf.domain, dkims))
            policies = find_policies(self._lookups(deadline), domains)  # first: nothing else spends its time
            if size > MAX_VERIFIED_BYTES:
                return MessageVerdicts((TOO_LARGE,), judge(policies, spf.for_dmarc, spf.domain, [], dkim_checked=False))

            def per_signature() -> DNSLookups:
                return self._lookups(min(deadline, time.monotonic() + PER_SIGNATURE))

            dkims = check_dkim(self._lookups(deadline), message, aligned_domains(policies), per_signature)
            return MessageVerdicts(tuple(dkims), judge(policies, spf.for_dmarc, spf.domain, dkims))

        def fallback(reason: str) -> MessageVerdicts:
            return MessageVerdicts((Verdict("dkim", TEMPERROR, reason),), DMARCVerdict(Verdict("dmarc", TEMPERROR, reason)))

        return self._guarded(defer.maybeDeferred(self._run, work), fallback, "DKIM/DMARC check")
