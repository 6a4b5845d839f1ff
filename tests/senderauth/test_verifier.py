"""
The verifier's message check against a DNS that is slow for some names:
the From domain's DMARC policy is read before any DKIM key, signatures
that can align are verified first and each key lookup has its own limit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import pymta.senderauth.verifier as verifier_module
from pymta.senderauth.dkimcheck import check_dkim
from pymta.senderauth.lookups import Lookups
from pymta.senderauth.spfcheck import SPFVerdicts
from pymta.senderauth.verdict import Verdict
from pymta.senderauth.verifier import MessageVerdicts, SenderVerifier
from tests.senderauth.fakedns import FakeLookups, Key, txt
from tests.waiting import wait_until

ZONE = {
    ("_dmarc.bank.test", "TXT"): [txt("v=DMARC1; p=reject")],
    ("sel._domainkey.bank.test", "TXT"): [txt(Key.get().record)],
}
MESSAGE = b"From: Bank <security@bank.test>\nTo: bob@example.org\nSubject: reset\n\nclick\n"
SPF = SPFVerdicts(Verdict("spf", "none"), Verdict("spf", "none", "", (("smtp.mailfrom", "client.example"),)),
                  "client.example")


class SlowResolver:
    """Answers from ZONE at once; a question under silent.test costs its whole lifetime (a skewed clock)."""

    def __init__(self) -> None:
        self.skew = 0.0
        self.fake = FakeLookups(ZONE)
        self.asked: list[str] = []

    def now(self) -> float:
        return time.monotonic() + self.skew

    def resolve(self, qname: Any, rdtype: Any, search: bool = False, lifetime: float = 5.0) -> Any:
        name = qname.to_text().rstrip(".")
        self.asked.append(name)
        if name.endswith("silent.test"):
            self.skew += lifetime
            raise dns.exception.Timeout()
        records = self.fake.records(name, dns.rdatatype.to_text(rdtype))
        if not records:
            raise dns.resolver.NXDOMAIN()
        return records


class SlowKeysTests(SynchronousTestCase):
    def check(self, message: bytes) -> tuple[MessageVerdicts, SlowResolver]:
        resolver = SlowResolver()
        verifier = SenderVerifier(None, "mx.example.org", 20.0, reactor=None, run=defer.maybeDeferred,
                                  lookups=lambda deadline: Lookups(resolver, deadline, now=resolver.now))  # type: ignore[arg-type]
        found: list[MessageVerdicts] = []
        verifier.check_message(message, len(message), SPF).addCallback(found.append)
        return found[0], resolver

    def test_policy_is_read_before_slow_keys(self) -> None:
        message = MESSAGE
        for n in range(4):  # 4 keys x 5 s: the whole 20 s deadline
            message = Key.get().sign(message, "silent.test", selector=f"s{n}")
        found, resolver = self.check(message)
        self.assertEqual(resolver.asked[0], "_dmarc.bank.test")
        self.assertEqual([v.result for v in found.dkim], ["temperror"] * 4)
        self.assertEqual((found.dmarc.verdict.result, found.dmarc.policy), ("fail", "reject"))

    def test_aligned_signature_is_verified_first(self) -> None:
        message = Key.get().sign(MESSAGE, "bank.test")
        for n in range(8):  # 8 signatures of a slow domain on top, MAX_SIGNATURES in all
            message = Key.get().sign(message, "silent.test", selector=f"s{n}")
        found, _ = self.check(message)
        self.assertIn(("dkim", "pass"), [(v.method, v.result) for v in found.dkim])
        self.assertEqual(found.dmarc.verdict.result, "pass")

    def test_one_signer_for_all_signatures(self) -> None:
        import dkim

        made: list[object] = []
        original = dkim.DKIM.__init__

        def counting(self: Any, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            original(self, *args, **kwargs)

        message = Key.get().sign(Key.get().sign(MESSAGE, "bank.test"), "bank.test", selector="sel")
        self.patch(dkim.DKIM, "__init__", counting)
        self.assertEqual([v.result for v in check_dkim(FakeLookups(ZONE), message)], ["pass", "pass"])
        self.assertEqual(len(made), 1)


class StubReactor:
    """What deferToThreadPool needs of a reactor; results from the worker threads are dropped."""

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        pass


class ThreadsTests(SynchronousTestCase):
    def test_stop_does_not_wait_for_checks_in_flight(self) -> None:
        release, started = threading.Event(), threading.Event()
        verifier = SenderVerifier(None, "mx.example.org", 20.0, reactor=StubReactor())
        self.addCleanup(release.set)

        def blocked() -> None:
            started.set()
            release.wait(30)

        verifier._in_thread(blocked)
        self.assertTrue(started.wait(30))
        began = time.monotonic()
        verifier.stop()  # a reload: on the reactor thread
        self.assertLess(time.monotonic() - began, 1.0)
        self.assertTrue(verifier.stopped)
        release.set()
        self.assertTrue(wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("pymta-senderauth")]))

    def test_a_stopped_verifier_starts_no_threads(self) -> None:
        verifier = SenderVerifier(None, "mx.example.org", 20.0, reactor=Clock())
        verifier.stop()
        found: list[SPFVerdicts] = []
        verifier.check_sender("192.0.2.7", "a@example.com", "helo.test").addCallback(found.append)
        self.assertEqual((found[0].helo.result, found[0].helo.reason), ("temperror", "SPF check: checks stopped"))
        self.assertIsNone(verifier._pool)

    def test_a_check_taken_up_after_its_deadline_is_not_run(self) -> None:
        taken: list[tuple[Any, tuple[Any, ...]]] = []
        asked: list[float] = []
        pending: defer.Deferred[Any] = defer.Deferred()

        def lookups(deadline: float) -> FakeLookups:
            asked.append(deadline)
            return FakeLookups({})

        verifier = SenderVerifier(None, "mx.example.org", 2.0, reactor=Clock(),
                                  run=lambda f, *a: taken.append((f, a)) or pending, lookups=lookups)
        found: list[SPFVerdicts] = []
        verifier.check_sender("192.0.2.7", "a@example.com", "helo.test").addCallback(found.append)
        submitted = time.monotonic()
        self.patch(time, "monotonic", lambda: submitted + 2.0)  # the worker takes it up at its deadline
        [(work, args)] = taken
        raised = self.assertRaises(Exception, work, *args)
        self.assertEqual(type(raised).__name__, "_Expired")
        pending.errback(Failure(raised))
        self.assertEqual(asked, [])
        self.assertEqual((found[0].helo.result, found[0].helo.reason), ("temperror", "SPF check took longer than 2s"))

    def test_waiting_checks_are_bounded(self) -> None:
        verifier = SenderVerifier(None, "mx.example.org", 20.0, reactor=StubReactor(), maxthreads=1)
        self.patch(verifier_module, "MAX_WAITING", 2)
        release = threading.Event()
        self.addCleanup(verifier.stop)
        self.addCleanup(release.set)
        failures: list[Any] = []
        for _ in range(4):
            verifier._in_thread(release.wait, 30).addErrback(failures.append)
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0].type.__name__, "_Busy")
