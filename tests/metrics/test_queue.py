"""Tests for pymta.metrics.queue: the scheduler's state map and log lines as metrics, on a Clock."""

from __future__ import annotations

import os
import shutil
import tempfile

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock
from twisted.trial import unittest

from pymta.metrics.queue import DeliveryCounter, QueueCollector, age_column
from pymta.queue.channeljob import ChannelJob
from pymta.queue.firstattempt import FirstAttempt
from pymta.queue.messagestate import MessageStates, Stage
from pymta.queue.qmaillog import QmailLog
from pymta.remote.tcpto import DeadHostMemory
from twisted.logger import Logger

from pymta.queue import reasonbook
from pymta.queue.reasons import Reason, append_reasons
from tests.queue.helpers import disk_for
from tests.queue.test_scheduler import SchedulerTestMixin, queue_message


class FakeScheduler:
    """What the collector reads of a Scheduler: its state map, slots(), paused and stats."""

    def __init__(self) -> None:
        self.messages = MessageStates(("local", "remote"))
        self.stats = {"messages_done": 7, "bounces": 1}

        self.paused = False

    def slots(self) -> dict[str, int]:
        return {"local_used": 2, "local_limit": 10, "remote_used": 0, "remote_limit": 20}


class QueueMetricsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100_000)
        self.scheduler = FakeScheduler()
        self.registry = CollectorRegistry()
        directory = tempfile.mkdtemp(prefix="pymta-metrics-")
        self.addCleanup(shutil.rmtree, directory)
        self.tcpto = DeadHostMemory(os.path.join(directory, "tcpto"), clock=self.clock.seconds, pid=0)
        self.registry.register(QueueCollector(self.scheduler, self.tcpto, self.clock.seconds))

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def test_age_columns(self) -> None:
        self.assertEqual(age_column(0), "0-5")
        self.assertEqual(age_column(299), "0-5")
        self.assertEqual(age_column(300), "5-10")
        self.assertEqual(age_column(1279 * 60), "640-1280")
        self.assertEqual(age_column(86400), "1280+")

    def test_queue_by_stage_and_age(self) -> None:
        now = int(self.clock.seconds())
        states = self.scheduler.messages
        states.add(1, Stage.FIRST_WAITING, first=FirstAttempt(1, "local", "a@b", ("c@d",), now - 30))
        scheduled = states.add(2, Stage.SCHEDULED)
        scheduled.jobs["remote"] = ChannelJob(2, "remote", now, birth=now - 3 * 3600)
        states.add(3, Stage.WAITING)
        self.assertEqual(self.value("pymta_queue_messages", state="first_waiting"), 1)
        self.assertEqual(self.value("pymta_queue_messages", state="scheduled"), 1)
        self.assertEqual(self.value("pymta_queue_messages", state="waiting"), 1)
        self.assertEqual(self.value("pymta_queue_messages", state="finishing"), 0)
        self.assertEqual(self.value("pymta_queue_messages_by_age", age_minutes="0-5"), 1)
        self.assertEqual(self.value("pymta_queue_messages_by_age", age_minutes="160-320"), 1)
        self.assertEqual(self.value("pymta_queue_messages_by_age", age_minutes="unknown"), 1)
        self.assertEqual(self.value("pymta_queue_oldest_message_age_seconds"), 3 * 3600)
        states.start_preprocessing(10)
        self.assertEqual(self.value("pymta_queue_messages", state="waiting"), 0)
        self.assertEqual(self.value("pymta_queue_messages", state="preprocessing"), 1)

    def test_concurrency_stats_and_dead_hosts(self) -> None:
        self.assertEqual(self.value("pymta_channel_concurrency_used", channel="local"), 2)
        self.assertEqual(self.value("pymta_channel_concurrency_limit", channel="remote"), 20)
        self.assertEqual(self.value("pymta_messages_completed_total"), 7)
        self.assertEqual(self.value("pymta_bounces_total"), 1)
        self.assertEqual(self.value("pymta_remote_hosts_dead"), 0)
        self.tcpto.record_timeout("192.0.2.1")
        self.assertEqual(self.value("pymta_remote_hosts_dead"), 0)  # one timeout is not enough, as in qmail
        self.clock.advance(120)  # a second timeout counts two minutes after the first
        self.tcpto.record_timeout("192.0.2.1")
        self.assertEqual(self.value("pymta_remote_hosts_dead"), 1)

    def test_deliveries_from_log_lines(self) -> None:
        counter = DeliveryCounter(self.registry, self.scheduler, self.clock.seconds)
        log = QmailLog(Logger(namespace="test", observer=counter))  # type: ignore[arg-type]
        now = int(self.clock.seconds())
        first = FirstAttempt(5, "local", "a@b", ("c@d",), now - 4)
        self.scheduler.messages.add(5, Stage.FIRST_WAITING, first=first)
        log.starting_delivery(1, 5, "local", "c@d")
        log.starting_delivery(2, 6, "remote", "x@y")
        log.delivery(1, "K", "delivered")
        log.delivery(2, "Z", "try later")
        log.delivery(3, "K", "never started here: ignored")
        self.assertEqual(self.value("pymta_deliveries_total", channel="local", result="success"), 1)
        self.assertEqual(self.value("pymta_deliveries_total", channel="remote", result="deferral"), 1)
        self.assertEqual(self.value("pymta_delivery_latency_seconds_count", channel="local"), 1)
        self.assertEqual(self.value("pymta_delivery_latency_seconds_sum", channel="local"), 4)
        self.assertIsNone(self.value("pymta_delivery_latency_seconds_count", channel="remote"))


class CollectorOnSchedulerTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    """The collector on a real Scheduler: ages known after a restart, and a scrape reads no queue file."""

    def setUp(self) -> None:
        super().setUp()
        self.remote.answer = lambda job, r: ("Z", "connect to 127.0.0.9 failed\n")

    def collector(self, scheduler) -> QueueCollector:
        return QueueCollector(scheduler, DeadHostMemory(os.path.join(self.root, "tcpto"), clock=self.clock.seconds),
                              self.clock.seconds)

    def test_scrape_does_no_queue_file_io(self) -> None:
        ids = [queue_message(self.layout, "a@mail.example", [f"r{i}@dead.example"]) for i in range(5)]
        first = self.start()
        first.stopService()
        for mid in ids:  # as a deferral left them
            append_reasons(disk_for(self.layout), mid,
                           [Reason("remote", "x@dead.example", int(self.clock.seconds()), "t")])
        second = self.start()
        self.addCleanup(second.stopService)
        reads: list[tuple] = []
        real = reasonbook.read_reasons
        self.patch(reasonbook, "read_reasons", lambda *a: reads.append(a) or real(*a))
        opened: list[str] = []
        real_open = open

        def watching_open(path, *a, **kw):
            opened.append(str(path))
            return real_open(path, *a, **kw)

        import builtins
        self.patch(builtins, "open", watching_open)
        families = {m.name: m for m in self.collector(second).collect()}
        self.assertEqual(reads, [], "a scrape read reason files in the reactor thread")
        self.assertEqual([p for p in opened if self.root in p and "tcpto" not in p], [])
        self.assertEqual(families["pymta_queue_messages"].samples[
            [s.labels["state"] for s in families["pymta_queue_messages"].samples].index("scheduled")].value, 5)

    def test_age_known_after_restart(self) -> None:
        queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        first = self.start()
        self.clock.advance(3 * 86400 - 10)  # a three-day-old message, its next retry still ahead
        first.stopService()
        second = self.start()
        self.addCleanup(second.stopService)
        families = {m.name: m for m in self.collector(second).collect()}
        oldest = families["pymta_queue_oldest_message_age_seconds"].samples[0].value
        self.assertGreater(oldest, 2 * 86400)
        ages = {s.labels["age_minutes"]: s.value for s in families["pymta_queue_messages_by_age"].samples}
        self.assertEqual(ages["unknown"], 0)
        self.assertEqual(ages["1280+"], 1)

    def test_age_of_a_held_message_after_restart(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        first = self.start()
        self.clock.advance(2 * 3600)
        first.stopService()
        open(self.layout.hold(mid), "wb").close()  # as pymta ctl hold leaves it
        second = self.start()
        self.addCleanup(second.stopService)
        families = {m.name: m for m in self.collector(second).collect()}
        states = {s.labels["state"]: s.value for s in families["pymta_queue_messages"].samples}
        self.assertEqual(states["held"], 1)
        ages = {s.labels["age_minutes"]: s.value for s in families["pymta_queue_messages_by_age"].samples}
        self.assertEqual((ages["unknown"], ages["80-160"]), (0, 1))

    def test_age_of_a_message_preprocessed_here(self) -> None:
        queue_message(self.layout, "a@mail.example", ["r@dead.example"])
        scheduler = self.start()
        self.addCleanup(scheduler.stopService)
        self.clock.advance(600)
        families = {m.name: m for m in self.collector(scheduler).collect()}
        self.assertEqual(families["pymta_queue_oldest_message_age_seconds"].samples[0].value, 600)
