"""
Restart-in-the-middle tests for pymta.queue.scheduler: stop (or drop) a
scheduler with deliveries half done, start a new one on the same queue:
nothing finished is repeated, nothing is lost, retry times survive.
"""

from __future__ import annotations

import collections
import os

from twisted.trial import unittest

from tests.queue.test_scheduler import START, RecordingChannel, SchedulerTestMixin, queue_message


class RestartTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    controls = {"concurrencyremote": "4\n"}

    def successes(self, channel: RecordingChannel, answered: set[int]) -> list[str]:
        return [r for i, job in enumerate(channel.jobs) if i in answered for r in job.recipients]

    def test_stop_with_deliveries_in_flight(self) -> None:
        self.remote.hold = True
        ids = []
        everyone = []
        for n in range(10):
            rcpts = [f"r{n}.{k}@other.example" for k in range(3)] + [f"l{n}.{k}@mail.example" for k in range(2)]
            everyone += rcpts
            ids.append(queue_message(self.layout, "a@mail.example", rcpts))
        first = self.start(stop_timeout=5)
        self.assertEqual(len(self.remote.held), 4)
        # two of the four remote deliveries come back, the other two hang
        held = self.remote.held
        self.remote.held = []
        answered_first = []
        for job, d in held[:2]:
            d.callback([self.remote_result(job)] * len(job.recipients))
            answered_first += job.recipients
        self.clock.advance(0)
        stopping = first.stopService()
        self.assertNoResult(stopping)
        self.assertTrue(any(l.endswith(" exitasap") for l in self.lines()))
        self.clock.advance(5)
        self.successResultOf(stopping)
        self.assertEqual(self.lines()[-1], "status: exiting")
        self.assertTrue(self.local.stopped and self.remote.stopped)
        delivered_first = self.local.recipients() + answered_first
        in_flight_at_stop = [r for job, _ in held[2:] for r in job.recipients]

        # a new scheduler with fresh channels on the same queue
        second_local = RecordingChannel()
        second_remote = RecordingChannel()
        self.events.clear()
        second = self.start(local=second_local, remote=second_remote)
        delivered_second = second_local.recipients() + second_remote.recipients()
        self.assertEqual(set(delivered_first) & set(delivered_second), set())
        self.assertEqual(sorted(delivered_first + delivered_second), sorted(everyone))
        for r in in_flight_at_stop:
            self.assertIn(r, delivered_second)
        self.assertEqual(collections.Counter(delivered_first + delivered_second).most_common(1)[0][1], 1)
        self.assertEqual(self.queue_files(), [])
        self.assertEqual(len([l for l in self.lines() if l.startswith("end msg")]), 10)
        second.stopService()

    def remote_result(self, job):
        from pymta.interfaces import DeliveryResult

        return DeliveryResult("K", "accepted\n")

    def test_stop_waits_for_deliveries_and_records_them(self) -> None:
        self.remote.hold = True
        mid = queue_message(self.layout, "a@mail.example", ["r@other.example", "l@mail.example"])
        s = self.start()
        stopping = s.stopService()
        self.assertNoResult(stopping)
        self.remote.release("K", "ok\n")
        self.successResultOf(stopping)
        self.assertIn("delivery 2: success: ok/", self.lines())
        # the remote recipient is checkpointed (its file is gone), the message itself stays until next start
        self.assertFalse(os.path.exists(self.layout.remote(mid)))
        self.assertTrue(os.path.exists(self.layout.info(mid)))
        # nothing new starts after stop
        other = queue_message(self.layout, "a@mail.example", ["x@mail.example"])
        s.notify(other)
        self.clock.advance(100)
        self.assertEqual(self.local.recipients(), ["l@mail.example"])
        local, remote = RecordingChannel(), RecordingChannel()
        self.start(local=local, remote=remote)
        self.assertEqual(local.recipients(), ["x@mail.example"])
        self.assertEqual(remote.jobs, [])
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.queue_files(), [])

    def test_retry_time_survives_restart(self) -> None:
        self.remote.answer = lambda job, r: ("Z", "later\n")
        mid = queue_message(self.layout, "a@mail.example", ["r@other.example"])
        s = self.start()
        self.clock.advance(100)
        self.successResultOf(s.stopService())
        self.assertEqual(int(os.stat(self.layout.remote(mid)).st_mtime), START + 400)
        self.assertEqual(int(os.stat(self.layout.info(mid)).st_mtime), START)
        remote = RecordingChannel(answer=lambda job, r: ("K", "ok\n"))
        self.clock.advance(100)
        self.start(remote=remote)
        self.assertEqual(remote.jobs, [])
        self.advance_to_age(START, 399)
        self.assertEqual(remote.jobs, [])
        self.advance_to_age(START, 400)
        self.assertEqual(remote.recipients(), ["r@other.example"])
        self.assertEqual(self.queue_files(), [])

    def test_crash_restart_resumes_from_files(self) -> None:
        """A scheduler that vanished without stopping: the new one finds everything on disk."""
        self.local.hold = True
        self.remote.answer = lambda job, r: ("D", "no such user\n")
        mid = queue_message(self.layout, "a@src.example", ["l@mail.example", "r@other.example"])
        self.start()
        self.assertTrue(os.path.exists(self.layout.bounce(mid)))
        self.assertFalse(os.path.exists(self.layout.remote(mid)))
        # crash: the first scheduler is simply forgotten
        local = RecordingChannel()
        self.clock.advance(10)
        self.start(local=local)
        self.assertEqual(local.recipients(), ["l@mail.example"])
        self.assertEqual(len(self.sink.messages), 1)
        self.assertIn(b"<r@other.example>:\nno such user\n\n", self.sink.messages[0][3])
        self.assertEqual(self.queue_files(), [])

    def test_crash_during_preprocessing_redone(self) -> None:
        """todo/ID still there next to info/local: the message is preprocessed again from scratch."""
        mid = queue_message(self.layout, "a@mail.example", ["l@mail.example"])
        with open(self.layout.info(mid), "wb") as f:
            f.write(b"Fstale@x\0")
        with open(self.layout.local(mid), "wb") as f:
            f.write(b"Tstale@mail.example\0")
        self.start()
        self.assertEqual(self.local.recipients(), ["l@mail.example"])
        self.assertEqual(self.queue_files(), [])

    def test_finished_message_without_channel_files_is_removed(self) -> None:
        mid = queue_message(self.layout, "a@mail.example", ["l@mail.example"])
        local = RecordingChannel(hold=True)
        self.start(local=local)
        os.unlink(self.layout.local(mid))  # as if the pass finished just before a crash
        self.start(local=RecordingChannel())
        self.assertIn(f"end msg {mid}", self.lines())
        self.assertEqual(self.queue_files(), [])


class OwnershipTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    def test_files_created_as_root_belong_to_the_queue_owner(self) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        os.chown(self.layout.queuedir, 65534, 65534)
        self.remote.answer = lambda job, r: ("Z", "later\n") if r.startswith("z") else ("D", "no\n")
        self.local.hold = True
        mid = queue_message(self.layout, "a@mail.example", ["l@mail.example", "z@other.example", "d@other.example"])
        self.start()
        for path in (self.layout.info(mid), self.layout.local(mid), self.layout.remote(mid), self.layout.bounce(mid)):
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (65534, 65534), path)


class ScriptedChannel:
    """Answers K/Z/D from a seeded random script, holds some jobs forever (lost at a stop)."""

    def __init__(self, rng, ledger: dict, max_recipients: int) -> None:
        self.rng = rng
        self.ledger = ledger
        self.max_recipients = max_recipients

    def start(self) -> None:
        pass

    def deliver(self, job):
        from twisted.internet import defer

        from pymta.interfaces import DeliveryResult

        for r in job.recipients:
            self.ledger.setdefault(r, []).append("started")
        if self.rng.random() < 0.1:
            for r in job.recipients:
                self.ledger[r].append("lost")
            return defer.Deferred()  # never answers: the scheduler is stopped while it hangs
        results = []
        for r in job.recipients:
            status = self.rng.choices("KZD", weights=(6, 3, 1))[0]
            self.ledger[r].append(status)
            results.append(DeliveryResult(status, f"answer {status}\n"))
        return defer.succeed(results)

    def stop(self):
        return None


class RandomRestartTests(SchedulerTestMixin, unittest.SynchronousTestCase):
    """Many stops and restarts in the middle of random outcomes: nothing repeated after a final answer, nothing lost."""

    def test_random_outcomes_and_restarts(self) -> None:
        import random

        rng = random.Random(20261129)
        ledger: dict[str, list[str]] = {}
        expected: dict[int, list[str]] = {}
        for n in range(25):
            rcpts = [f"l{n}.{k}@mail.example" for k in range(rng.randint(0, 2))]
            rcpts += [f"r{n}.{k}@d{k % 2}.example" for k in range(rng.randint(1, 3))]
            expected[queue_message(self.layout, f"s{n}@src.example", rcpts)] = rcpts
        for round_ in range(8):
            channels = {"local": ScriptedChannel(rng, ledger, 1), "remote": ScriptedChannel(rng, ledger, 3)}
            s = self.start(**channels, stop_timeout=1)
            for _ in range(rng.randint(1, 6)):
                self.clock.advance(rng.choice([0, 50, 100, 400, 1000]))
            stopping = s.stopService()
            self.clock.advance(1)
            self.successResultOf(stopping)
            self.clock.advance(rng.choice([0, 10, 500]))
        # a last run without lost jobs until the queue is empty
        calm = random.Random(1)
        channels = {"local": ScriptedChannel(calm, ledger, 1), "remote": ScriptedChannel(calm, ledger, 3)}
        for ch in channels.values():
            ch.rng = type("NoLoss", (), {"random": lambda self: 1.0, "choices": calm.choices})()
        s = self.start(**channels)
        for _ in range(200):
            if not s.jobs() and not os.listdir(self.layout.dir("todo")):
                break
            self.clock.advance(3600)
        self.assertEqual(self.queue_files(), [])

        finals = {}
        for rcpt, events in ledger.items():
            answers = [e for e in events if e in ("K", "D")]
            # exactly one final answer, and no attempt started after it
            self.assertEqual(len(answers), 1, (rcpt, events))
            self.assertIn(events[-1], ("K", "D"), (rcpt, events))
            finals[rcpt] = answers[0]
        everyone = [r for rcpts in expected.values() for r in rcpts]
        self.assertEqual(sorted(finals), sorted(everyone))
        # the script did exercise the hard cases
        events = [e for evs in ledger.values() for e in evs]
        self.assertGreater(events.count("lost"), 3)
        self.assertGreater(events.count("Z"), 5)
        self.assertGreater(events.count("D"), 2)
        bounced = {}
        for sender, recipients, origin, data in self.sink.messages:
            bounced[recipients[0]] = data
        for mid, rcpts in expected.items():
            sender = f"s{list(expected).index(mid)}@src.example"
            failed = [r for r in rcpts if finals[r] == "D"]
            if failed:
                data = bounced.pop(sender)
                for r in failed:
                    self.assertEqual(data.count(f"<{r}>:\n".encode()), 1)
                for r in rcpts:
                    if r not in failed:
                        self.assertNotIn(f"<{r}>:".encode(), data)
        self.assertEqual(bounced, {})
