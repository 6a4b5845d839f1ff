"""Tests for pymta.remote.mtastscache: policies kept in memory and in a file across restarts."""

from __future__ import annotations

import json
import os

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pymta.remote.mtastscache import CachedPolicy, PolicyCache, cache_path
from pymta.remote.mtastspolicy import ENFORCE, MAX_AGE, TESTING, Policy

POLICY = Policy(ENFORCE, 3600, ("mx.example.test", "*.example.net"))


class CacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.path = os.path.abspath(self.mktemp())

    def test_kept_across_restarts(self) -> None:
        cache = PolicyCache(self.path, self.clock.seconds)
        self.assertIsNone(cache.get("example.test"))
        entry = CachedPolicy("id1", self.clock.seconds(), POLICY)
        cache.put("example.test", entry)
        self.assertEqual(cache.get("example.test"), entry)
        again = PolicyCache(self.path, self.clock.seconds)
        self.assertEqual(again.get("example.test"), entry)
        self.assertFalse(os.path.exists(self.path + ".tmp"))

    def test_freshness(self) -> None:
        entry = CachedPolicy("id1", self.clock.seconds(), POLICY)
        self.assertTrue(entry.fresh(self.clock.seconds() + 3599))
        self.assertFalse(entry.fresh(self.clock.seconds() + 3600))

    def test_unusable_file_and_entries(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        with open(self.path, "w") as f:
            f.write("{not json")
        self.assertIsNone(PolicyCache(self.path, self.clock.seconds).get("example.test"))
        good = CachedPolicy("id1", 5.0, POLICY).encode()
        with open(self.path, "w") as f:
            json.dump({"version": 1, "domains": {"good.test": good, "bad.test": {"id": 3}}}, f)
        cache = PolicyCache(self.path, self.clock.seconds)
        self.assertEqual(cache.get("good.test"), CachedPolicy("id1", 5.0, POLICY))
        self.assertIsNone(cache.get("bad.test"))
        texts = [e.get("log_format", "") for e in events]
        self.assertEqual(sum("unusable, starting empty" in t for t in texts), 1)
        self.assertEqual(sum("skipped" in t for t in texts), 1)

    def test_bounded(self) -> None:
        cache = PolicyCache(self.path, self.clock.seconds, max_entries=2)
        now = self.clock.seconds()
        cache.put("old.test", CachedPolicy("a", now - 7200, POLICY))  # expired
        cache.put("soon.test", CachedPolicy("b", now - 3000, POLICY))
        cache.put("late.test", CachedPolicy("c", now, POLICY))
        self.assertIsNone(cache.get("old.test"))
        cache.put("later.test", CachedPolicy("d", now + 10, Policy(TESTING, 3600, ("x.test",))))
        self.assertIsNone(cache.get("soon.test"))  # the one expiring first goes
        with open(self.path) as f:
            self.assertEqual(sorted(json.load(f)["domains"]), ["late.test", "later.test"])

    def test_memory_only_and_unwritable(self) -> None:
        cache = PolicyCache(None, self.clock.seconds)
        cache.put("example.test", CachedPolicy("id1", 1.0, POLICY))
        self.assertIsNotNone(cache.get("example.test"))
        broken = PolicyCache(os.path.join(self.path, "missing-dir", "mtasts"), self.clock.seconds)
        broken.put("example.test", CachedPolicy("id1", 1.0, POLICY))  # logged, not raised
        self.assertIsNotNone(broken.get("example.test"))

    def test_writes_batched_by_the_reactor(self) -> None:
        cache = PolicyCache(self.path, self.clock.seconds, call_later=self.clock.callLater, write_delay=30)
        first, second = CachedPolicy("id1", self.clock.seconds(), POLICY), CachedPolicy("id2", self.clock.seconds(), POLICY)
        cache.put("one.test", first)
        cache.put("two.test", second)
        self.assertFalse(os.path.exists(self.path))  # not in the reactor at each put
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(30)
        self.assertEqual(PolicyCache(self.path, self.clock.seconds).get("two.test"), second)
        cache.put("three.test", first)
        cache.flush()  # at stop: written now, the timer is cancelled
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(PolicyCache(self.path, self.clock.seconds).get("three.test"), first)

    def test_written_file_is_synced_before_the_rename(self) -> None:
        calls: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace
        self.patch(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
        self.patch(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
        PolicyCache(self.path, self.clock.seconds).put("example.test", CachedPolicy("id1", 1.0, POLICY))
        self.assertEqual(calls, ["fsync", "replace"])

    def test_entries_read_back_are_bounded(self) -> None:
        now = self.clock.seconds()
        long = dict(CachedPolicy("id1", now, POLICY).encode(), max_age=10 * MAX_AGE)
        future = CachedPolicy("id2", now + 3600, POLICY).encode()
        with open(self.path, "w") as f:
            json.dump({"version": 1, "domains": {"long.test": long, "future.test": future}}, f)
        cache = PolicyCache(self.path, self.clock.seconds)
        entry = cache.get("long.test")
        assert entry is not None
        self.assertEqual(entry.policy.max_age, MAX_AGE)
        self.assertIsNone(cache.get("future.test"))  # a fetch time to come would stretch the policy's life

    def test_path(self) -> None:
        self.assertEqual(cache_path("/var/pymta"), "/var/pymta/queue/lock/mtasts")
