"""Tests for pymta.report.matchup: joining crafted logs (restarts, time ranges, partial logs, garbage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from twisted.trial.unittest import SynchronousTestCase

from pymta.report.logline import DEFERRAL, FAILURE, SUCCESS, LineReader
from pymta.report.matchup import Delivery, Matchup, Message, Unmatched

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp()


def log(*entries: tuple[int, str]) -> list[str]:
    """twistd lines: (seconds after T0, qmail text)."""
    return [
        datetime.fromtimestamp(T0 + offset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
        + f" [pymta.send#info] {text}\n"
        for offset, text in entries
    ]


@dataclass
class Recorder:
    deliveries: list[Delivery] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)

    def bounced_by_ctl(self, reason: str) -> None:
        self.bounced.append(reason)

    def delivery(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def message(self, message: Message) -> None:
        self.messages.append(message)


def run(lines: list[str], since: float | None = None, until: float | None = None) -> tuple[Recorder, Unmatched]:
    recorder = Recorder()
    matchup = Matchup(recorder, since, until)
    reader = LineReader()
    for line in lines:
        got = reader.read(line)
        if got is not None:
            matchup.feed(*got)
    return recorder, matchup.finish()


ONE_MESSAGE = log(
    (0, "new msg 100"),
    (0, "info msg 100: bytes 500 from <a@example.org> qp 7 uid 0"),
    (1, "starting delivery 1: msg 100 to local b@example.org"),
    (2, "starting delivery 2: msg 100 to remote c@example.net"),
    (4, "delivery 1: success: did_1+0+0/"),
    (9, "delivery 2: failure: no_such_user"),
    (10, "end msg 100"),
)


class JoinTests(SynchronousTestCase):
    def test_one_message(self) -> None:
        got, unmatched = run(ONE_MESSAGE)
        self.assertEqual(got.deliveries, [
            Delivery(SUCCESS, T0 + 1, T0 + 4, "local", "b@example.org", "did_1+0+0/", T0, 500, "a@example.org"),
            Delivery(FAILURE, T0 + 2, T0 + 9, "remote", "c@example.net", "no_such_user", T0, 500, "a@example.org"),
        ])
        self.assertEqual([d.xdelay for d in got.deliveries], [3, 7])
        self.assertEqual(got.deliveries[0].ddelay, 4)
        self.assertEqual(got.messages, [Message(T0, T0 + 10, 500, "a@example.org", 1, 1, 0)])
        self.assertEqual((got.messages[0].qtime, got.messages[0].recipients), (10, 2))
        self.assertEqual(unmatched, Unmatched(first=T0, last=T0 + 10))

    def test_garbage_between_lines_changes_nothing(self) -> None:
        noisy: list[str] = []
        for line in ONE_MESSAGE:
            noisy += [line, "garbage\n", "\x00\xff\n", line[:25] + "\n",
                      "2026-05-01T10:00:00+0000 [pymta.send#info] status: local 1/10 remote 0/20\n",
                      "2026-05-01T10:00:00+0000 [pymta#info] smtpd: ok 127.0.0.1 -> 127.0.0.1\n"]
        self.assertEqual(run(noisy), run(ONE_MESSAGE))

    def test_restart_after_a_clean_stop(self) -> None:
        got, unmatched = run(log(
            (0, "new msg 100"),
            (0, "info msg 100: bytes 500 from <a@example.org> qp 7 uid 0"),
            (1, "starting delivery 1: msg 100 to remote c@example.net"),
            (2, "status: exiting"),  # the delivery in flight was cut off by the stop
            (5, "twistd 26.10.0 (/venv/bin/python3 3.11.7) starting up."),
            (6, "new msg 200"),
            (6, "info msg 200: bytes 20 from <z@example.org> qp 8 uid 0"),
            (7, "delivery 1: success: late"),  # run 2's delivery 1 has not started: not the old one
            (8, "starting delivery 1: msg 100 to remote c@example.net"),
            (9, "starting delivery 2: msg 200 to local y@example.org"),
            (10, "delivery 2: success: ok"),
            (11, "delivery 1: deferral: busy"),
        ))
        self.assertEqual([(d.recipient, d.status, d.start, d.end, d.sender) for d in got.deliveries], [
            ("y@example.org", SUCCESS, T0 + 9, T0 + 10, "z@example.org"),
            ("c@example.net", DEFERRAL, T0 + 8, T0 + 11, "a@example.org"),  # message 100 lives on over the restart
        ])
        self.assertEqual((unmatched.starts_without_result, unmatched.results_without_start), (1, 1))
        self.assertEqual(unmatched.open_messages, 2)

    def test_restart_after_a_kill(self) -> None:
        # no "status: exiting" and no twistd line (a journal cut, say): a number started again means a new run
        got, unmatched = run(log(
            (0, "new msg 100"),
            (0, "info msg 100: bytes 500 from <a@example.org> qp 7 uid 0"),
            (1, "starting delivery 1: msg 100 to remote c@example.net"),
            (50, "starting delivery 1: msg 100 to remote c@example.net"),
            (52, "delivery 1: success: ok"),
            (53, "end msg 100"),
        ))
        self.assertEqual([(d.start, d.end) for d in got.deliveries], [(T0 + 50, T0 + 52)])
        self.assertEqual(got.messages, [Message(T0, T0 + 53, 500, "a@example.org", 1, 0, 0)])
        self.assertEqual(unmatched.starts_without_result, 1)

    def test_message_ids_come_back(self) -> None:
        got, _ = run(log(
            (0, "new msg 100"),
            (0, "info msg 100: bytes 1 from <first@example.org> qp 1 uid 0"),
            (1, "starting delivery 1: msg 100 to local b@example.org"),
            (2, "delivery 1: success: ok"),
            (2, "end msg 100"),
            (3, "new msg 100"),
            (3, "info msg 100: bytes 2 from <second@example.org> qp 2 uid 0"),
            (4, "starting delivery 2: msg 100 to local b@example.org"),
            (5, "new msg 100"),  # an end msg was lost: the life before is forgotten
            (5, "info msg 100: bytes 3 from <third@example.org> qp 3 uid 0"),
            (6, "delivery 2: deferral: busy"),  # belongs to the life it started in
            (7, "end msg 100"),
        ))
        self.assertEqual([(d.sender, d.size) for d in got.deliveries],
                         [("first@example.org", 1), ("second@example.org", 2)])
        self.assertEqual([(m.sender, m.birth, m.attempts) for m in got.messages],
                         [("first@example.org", T0, 1), ("third@example.org", T0 + 5, 0)])


class CtlTests(SynchronousTestCase):
    def test_deleted_message_is_not_completed(self) -> None:
        got, unmatched = run(log(
            (0, "new msg 5"),
            (0, "info msg 5: bytes 500 from <a@example.org> qp 7 uid 0"),
            (1, "starting delivery 1: msg 5 to remote c@example.net"),
            (2, "delivery 1: deferral: timeout"),
            (50, "delete msg 5 by ctl"),
            (50, "end msg 5"),
            (60, "delete msg 6 by ctl"),  # born before the log began
            (60, "end msg 6"),
        ))
        self.assertEqual(got.messages, [])
        self.assertEqual((unmatched.deleted, unmatched.ends_without_info, unmatched.open_messages), (2, 0, 0))

    def test_bounce_by_ctl_is_told(self) -> None:
        got, unmatched = run(log(
            (0, "new msg 5"),
            (0, "info msg 5: bytes 500 from <a@example.org> qp 7 uid 0"),
            (9, "bounce msg 5 by ctl: spam run, removed by the postmaster"),
            (9, "bounce msg 5 qp 8"),
            (9, "end msg 5"),
        ))
        self.assertEqual(got.bounced, ["spam run, removed by the postmaster"])
        self.assertEqual(unmatched.bounces, 1)
        self.assertEqual(len(got.messages), 1)


class PartialLogTests(SynchronousTestCase):
    def test_log_starting_in_the_middle(self) -> None:
        got, unmatched = run(ONE_MESSAGE[3:])  # from "starting delivery 2" on
        self.assertEqual([(d.status, d.birth, d.sender, d.size) for d in got.deliveries],
                         [(FAILURE, None, None, None)])
        self.assertEqual(got.messages, [])
        self.assertEqual((unmatched.results_without_start, unmatched.ends_without_info), (1, 1))

    def test_log_ending_in_the_middle(self) -> None:
        got, unmatched = run(ONE_MESSAGE[:5])
        self.assertEqual(len(got.deliveries), 1)
        self.assertEqual((unmatched.starts_without_result, unmatched.open_messages), (1, 1))


class TimeRangeTests(SynchronousTestCase):
    def test_counted_by_their_end_with_their_true_start(self) -> None:
        # since T0+3: delivery 1 (4) and 2 (9) and the message (10) ended inside; both started before
        got, unmatched = run(ONE_MESSAGE, since=T0 + 3)
        self.assertEqual([d.xdelay for d in got.deliveries], [3, 7])
        self.assertEqual([m.qtime for m in got.messages], [10])
        self.assertEqual((unmatched.first, unmatched.last), (T0 + 4, T0 + 10))
        self.assertEqual(unmatched.results_without_start, 0)

    def test_until_is_exclusive(self) -> None:
        got, unmatched = run(ONE_MESSAGE, until=T0 + 9)
        self.assertEqual([d.status for d in got.deliveries], [SUCCESS])
        self.assertEqual(got.messages, [])
        self.assertEqual((unmatched.first, unmatched.last), (T0, T0 + 4))

    def test_a_range_that_misses_everything(self) -> None:
        got, unmatched = run(ONE_MESSAGE, since=T0 + 100)
        self.assertEqual((got.deliveries, got.messages), ([], []))
        self.assertEqual((unmatched.first, unmatched.last), (None, None))

    def test_what_ended_before_the_range_still_counts_for_its_message(self) -> None:
        # delivery 1 ended at T0+4, before the range: not counted itself, but its message's success is
        got, _ = run(ONE_MESSAGE, since=T0 + 5)
        self.assertEqual([d.status for d in got.deliveries], [FAILURE])
        self.assertEqual([(m.successes, m.failures) for m in got.messages], [(1, 1)])


class StreamTests(SynchronousTestCase):
    def test_memory_follows_the_queue_not_the_log(self) -> None:
        # 20,000 messages, one after the other: never more than one message and one delivery held
        def lines() -> Iterator[str]:
            for i in range(20_000):
                yield from log(
                    (i, f"new msg {i}"),
                    (i, f"info msg {i}: bytes 10 from <s@example.org> qp 1 uid 0"),
                    (i, f"starting delivery {i + 1}: msg {i} to local r@example.org"),
                    (i, f"delivery {i + 1}: success: ok"),
                    (i, f"end msg {i}"),
                )

        recorder = Recorder()
        matchup = Matchup(recorder)
        reader = LineReader()
        most = 0
        for line in lines():
            got = reader.read(line)
            assert got is not None
            matchup.feed(*got)
            most = max(most, matchup.held)
        self.assertEqual(most, 2)
        self.assertEqual((len(recorder.messages), len(recorder.deliveries)), (20_000, 20_000))
        self.assertEqual(matchup.finish().open_messages, 0)
