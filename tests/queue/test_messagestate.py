"""
Tests for pymta.queue.messagestate: the map of where each message stands in
pymta-send, its legal moves and its FIFO indexes - without a scheduler.
"""

from __future__ import annotations

from twisted.trial import unittest

from pymta.queue.channeljob import RESTED, ChannelJob, DueJobs
from pymta.queue.envelope import Envelope
from pymta.queue.firstattempt import FirstAttempt
from pymta.queue.messagestate import MOVES, IllegalMove, Later, MessageStates, Pending, Stage
from pymta.queue.restrecord import pack, unpack


def first_attempt(message_id: int, channel: str = "local") -> FirstAttempt:
    return FirstAttempt(message_id, channel, "a@example.com", ("b@example.com",), 0)


class MoveTests(unittest.TestCase):
    def setUp(self) -> None:
        self.states = MessageStates(("local", "remote"))

    def test_a_message_through_its_life(self) -> None:
        s = self.states
        s.add(1, Stage.WAITING)
        s.move(1, Stage.PREPROCESSING)
        state = s.move(1, Stage.SCHEDULED)
        state.jobs["local"] = ChannelJob(1, "local", 5)
        self.assertIs(s.job(1, "local"), state.jobs["local"])
        s.move(1, Stage.FINISH_QUEUED)
        self.assertEqual(state.jobs, {})
        s.move(1, Stage.FINISHING)
        self.assertIs(s.drop(1), state)
        self.assertNotIn(1, s)
        self.assertEqual(len(s), 0)
        self.assertEqual(s.count(*Stage), 0)

    def test_illegal_moves_are_refused_and_change_nothing(self) -> None:
        s = self.states
        s.add(1, Stage.WAITING)
        with self.assertRaises(IllegalMove):
            s.move(1, Stage.FINISHING)  # never preprocessed
        with self.assertRaises(IllegalMove):
            s.add(1, Stage.WAITING)  # two lives of one id at once
        with self.assertRaises(IllegalMove):
            s.move(2, Stage.PREPROCESSING)  # not known
        with self.assertRaises(IllegalMove):
            s.move(1, Stage.HELD)  # only a preprocessed message is held (ctl delete may drop a waiting one)
        with self.assertRaises(IllegalMove):
            s.add(3, Stage.FIRST_RUNNING)  # a first attempt waits for its slot first
        with self.assertRaises(IllegalMove):
            s.add(4, Stage.FIRST_WAITING)  # ... and it needs the attempt
        with self.assertRaises(IllegalMove):
            s.add(5, Stage.WAITING, first_attempt(5))
        self.assertEqual((s.stage(1), len(s), s.count(Stage.WAITING)), (Stage.WAITING, 1, 1))

    def test_every_move_of_the_table_and_nothing_else(self) -> None:
        stages: list[Stage | None] = [None, *Stage]
        for old in stages:
            for new in stages:
                s = MessageStates(("local", "remote"))
                if old is not None:
                    # reach `old` by moves the table allows
                    path = {Stage.WAITING: [Stage.WAITING], Stage.PREPROCESSING: [Stage.WAITING, Stage.PREPROCESSING],
                            Stage.FIRST_WAITING: [Stage.FIRST_WAITING],
                            Stage.FIRST_RUNNING: [Stage.FIRST_WAITING, Stage.FIRST_RUNNING],
                            Stage.SCHEDULED: [Stage.SCHEDULED], Stage.FINISH_QUEUED: [Stage.FINISH_QUEUED],
                            Stage.FINISHING: [Stage.FINISH_QUEUED, Stage.FINISHING], Stage.LATER: [Stage.LATER],
                            Stage.HELD: [Stage.HELD]}[old]
                    s.add(1, path[0], first_attempt(1) if path[0] is Stage.FIRST_WAITING else None)
                    for stage in path[1:]:
                        s.move(1, stage)
                allowed = new in MOVES[old]
                try:
                    if old is None and new is not None:
                        s.add(1, new, first_attempt(1) if new is Stage.FIRST_WAITING else None)
                    elif new is None:
                        if s.drop(1) is None:
                            raise IllegalMove("nothing to drop")
                    elif old is None:
                        continue
                    else:
                        s.move(1, new)
                except IllegalMove:
                    self.assertFalse(allowed, (old, new))
                    continue
                self.assertTrue(allowed, (old, new))
                self.assertEqual(s.stage(1), new)

    def test_preprocessed_messages_keep_nothing_of_their_time_in_todo(self) -> None:
        s = self.states
        state = s.add(1, Stage.FIRST_WAITING, first_attempt(1))
        state.logged = True
        state.fresh = (Envelope(0, 1, "a@example.com", ("b@example.com",)), 10)
        s.move(1, Stage.FIRST_RUNNING)
        s.move(1, Stage.WAITING)
        s.move(1, Stage.PREPROCESSING)
        self.assertIsNotNone(state.first)  # its verdicts wait to be recorded
        s.move(1, Stage.SCHEDULED)
        self.assertEqual((state.first, state.fresh, state.logged), (None, None, False))

    def test_later_says_what_comes_next_and_is_cleared_on_leaving(self) -> None:
        state = self.states.add(1, Stage.LATER)
        state.later = Later.RESUME
        self.states.move(1, Stage.LATER)
        self.assertIs(state.later, Later.RESUME)
        self.states.move(1, Stage.SCHEDULED)
        self.assertIsNone(state.later)


class IndexTests(unittest.TestCase):
    def setUp(self) -> None:
        self.states = MessageStates(("local", "remote"))

    def test_waiting_messages_are_taken_in_order_and_once(self) -> None:
        s = self.states
        for i in (5, 3, 9):
            s.add(i, Stage.WAITING)
        self.assertEqual([x.message_id for x in s.start_preprocessing(2)], [5, 3])
        self.assertEqual(s.stage(5), Stage.PREPROCESSING)
        s.move(5, Stage.LATER)
        s.move(5, Stage.WAITING)  # back in line, behind 9
        self.assertEqual([x.message_id for x in s.start_preprocessing(10)], [9, 5])
        self.assertEqual(s.start_preprocessing(10), [])

    def test_first_attempts_per_channel_stale_entries_dropped(self) -> None:
        s = self.states
        s.add(1, Stage.FIRST_WAITING, first_attempt(1, "remote"))
        s.add(2, Stage.FIRST_WAITING, first_attempt(2, "local"))
        s.add(3, Stage.FIRST_WAITING, first_attempt(3, "local"))
        s.move(2, Stage.WAITING)  # requeued after a reload
        state = s.next_first("local")
        assert state is not None
        self.assertEqual(state.message_id, 3)
        self.assertIsNone(s.next_first("local"))
        remote = s.next_first("remote")
        self.assertEqual(remote.message_id if remote else None, 1)

    def test_a_new_life_of_an_id_is_not_confused_with_the_old_one(self) -> None:
        s = self.states
        s.add(7, Stage.FINISH_QUEUED)
        s.drop(7)  # finished another way
        s.add(7, Stage.WAITING)  # the id came back for a new message
        self.assertIsNone(s.next_to_finish())
        s.move(7, Stage.PREPROCESSING)
        s.move(7, Stage.FINISH_QUEUED)
        finishing = s.next_to_finish()
        self.assertEqual(finishing.message_id if finishing else None, 7)
        self.assertIsNone(s.next_to_finish())

    def test_counts_follow_the_moves(self) -> None:
        s = self.states
        s.add(1, Stage.WAITING)
        s.add(2, Stage.SCHEDULED)
        s.add(3, Stage.FIRST_WAITING, first_attempt(3))
        self.assertEqual((s.count(Stage.WAITING), s.count(Stage.SCHEDULED, Stage.FIRST_WAITING)), (1, 2))
        self.assertEqual(sorted(x.message_id for x in s.in_stage(Stage.WAITING, Stage.SCHEDULED)), [1, 2])
        s.clear()
        self.assertEqual((len(s), s.count(*Stage), s.next_first("local")), (0, 0, None))


class RestingTests(unittest.TestCase):
    """A scheduled message that only waits for its retry time is kept as a compact record until asked for."""

    def setUp(self) -> None:
        self.states = MessageStates(("local", "remote"))

    def test_a_resting_message_is_scheduled_and_wakes_when_asked_for(self) -> None:
        s = self.states
        s.rest(9, 1_700_000_000, {"remote": 1_700_000_400})
        self.assertIn(9, s)
        self.assertEqual((len(s), s.resting(), s.count(Stage.SCHEDULED)), (1, 1, 1))
        self.assertIs(s.stage(9), Stage.SCHEDULED)
        self.assertEqual(s.resting(), 1)  # asking for its stage does not wake it
        job = s.job(9, "remote")
        assert job is not None
        self.assertEqual((job.message_id, job.channel, job.due, job.running, job.heap_key), (9, "remote", 1_700_000_400,
                                                                                         False, RESTED))
        self.assertIsNone(s.job(9, "local"))
        self.assertEqual(s.resting(), 0)
        state = s.get(9)
        assert state is not None
        self.assertEqual((state.stage, state.birth, list(state.jobs)), (Stage.SCHEDULED, 1_700_000_000, ["remote"]))
        self.assertIsNone(job.reasons.kept)  # what its reason file holds is unknown, as after a restart
        self.assertEqual(s.count(Stage.SCHEDULED), 1)

    def test_resting_is_only_for_messages_the_map_does_not_hold(self) -> None:
        s = self.states
        s.add(1, Stage.WAITING)
        self.assertRaises(IllegalMove, s.rest, 1, None, {"local": 5})
        s.rest(2, None, {"local": 5, "remote": 6})
        self.assertRaises(IllegalMove, s.rest, 2, None, {"local": 5})
        self.assertRaises(IllegalMove, s.add, 2, Stage.WAITING)

    def test_moves_and_drops_wake_it_first(self) -> None:
        s = self.states
        s.rest(1, None, {"local": 5})
        s.rest(2, None, {"local": 5})
        s.move(1, Stage.HELD)
        self.assertEqual(s.stage(1), Stage.HELD)
        self.assertEqual(s.get(1).jobs, {})  # type: ignore[union-attr]  # held now: in the map
        dropped = s.drop(2)
        self.assertEqual(dropped.message_id if dropped else None, 2)
        self.assertEqual((len(s), s.count(Stage.SCHEDULED), s.count(Stage.HELD)), (1, 0, 1))

    def test_peeking_leaves_it_resting(self) -> None:
        s = self.states
        s.rest(1, 100, {"local": 5, "remote": 7})
        s.add(2, Stage.WAITING)
        peeked = list(s.in_stage(Stage.SCHEDULED, peek=True))
        self.assertEqual([(p.message_id, sorted((j.channel, j.due) for j in p.jobs.values())) for p in peeked],
                         [(1, [("local", 5), ("remote", 7)])])
        self.assertEqual(s.resting(), 1)
        woken = list(s.in_stage(Stage.SCHEDULED))
        self.assertEqual(s.resting(), 0)
        self.assertIs(woken[0], s.get(1))

    def test_an_idle_scheduled_message_rests_again(self) -> None:
        s = self.states
        s.rest(1, 100, {"remote": 500})
        job = s.job(1, "remote")
        assert job is not None
        job.running = True
        self.assertFalse(s.rest_if_idle(1))  # in a pass
        job.running, job.due = False, 900
        job.reasons.appended = True
        self.assertFalse(s.rest_if_idle(1))  # its reasons are to be rewritten
        job.reasons.appended = False
        state = s.get(1)
        assert state is not None
        state.pending = Pending("hold")
        self.assertFalse(s.rest_if_idle(1))  # a ctl action waits for it
        state.pending = None
        self.assertTrue(s.rest_if_idle(1))
        self.assertEqual((s.resting(), s.count(Stage.SCHEDULED)), (1, 1))
        again = s.job(1, "remote")
        self.assertEqual(again.due if again else None, 900)
        s.add(2, Stage.WAITING)
        self.assertFalse(s.rest_if_idle(2))
        self.assertFalse(s.rest_if_idle(3))

    def test_clear_forgets_resting_messages(self) -> None:
        s = self.states
        s.rest(1, None, {"local": 5})
        s.clear()
        self.assertEqual((len(s), s.resting(), 1 in s), (0, 0, False))


class RestRecordTests(unittest.TestCase):
    def test_round_trip(self) -> None:
        for birth, dues in [(None, [None, None]), (0, [0, None]), (1_790_000_000, [None, 1_790_000_400]),
                            (2**40 - 2, [2**40 - 2, 1])]:
            self.assertEqual(unpack(pack(birth, dues), 2), (birth, dues))

    def test_out_of_range_times_are_clamped(self) -> None:
        self.assertEqual(unpack(pack(-5, [2**41]), 1), (0, [2**40 - 2]))


class RestedDueJobsTests(unittest.TestCase):
    """The waiting jobs of resting messages in L{DueJobs}: told by their attempt time."""

    def test_rested_entries_and_stale_ones(self) -> None:
        s = MessageStates(("local", "remote"))
        due = DueJobs(("local", "remote"), s.job, s.resting_due)
        s.rest(1, None, {"remote": 50})
        due.push_rested("remote", 50, 1)
        s.rest(2, None, {"remote": 30})
        due.push_rested("remote", 30, 2)
        due.push_rested("remote", 10, 2)  # stale: not its time
        due.push_rested("local", 10, 2)  # stale: no local job
        self.assertEqual((due.first_due("remote"), due.first_due("local"), s.resting()), (30, None, 2))
        first = due.first("remote")
        self.assertEqual((first.message_id, first.due) if first else None, (2, 30))
        due.pop("remote")
        first.running = True  # a pass opened
        nxt = due.first("remote")
        self.assertEqual(nxt.message_id if nxt else None, 1)
        # pushed again, then resting again: the new entry still counts
        first.running = False
        due.push(first, 70)
        self.assertTrue(s.rest_if_idle(2))
        due.pop("remote")  # message 1's pass
        s.drop(1)
        again = due.first("remote")
        self.assertEqual((again.message_id, again.due) if again else None, (2, 70))
