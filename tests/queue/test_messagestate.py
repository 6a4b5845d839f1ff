"""
Tests for pymta.queue.messagestate: the map of where each message stands in
pymta-send, its legal moves and its FIFO indexes - without a scheduler.
"""

from __future__ import annotations

from twisted.trial import unittest

from pymta.queue.channeljob import ChannelJob
from pymta.queue.envelope import Envelope
from pymta.queue.firstattempt import FirstAttempt
from pymta.queue.messagestate import MOVES, IllegalMove, Later, MessageStates, Stage


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
