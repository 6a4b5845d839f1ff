"""Tests for pymta.serialmail.handover: what becomes of each held file."""

from __future__ import annotations

import os
from typing import IO

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.trial import unittest

from pymta.interfaces import QueueRefused
from pymta.serialmail.courier import Handover
from pymta.serialmail.handover import hand_over, remove_held
from pymta.serialmail.held import HeldMessage, scan
from tests.serialmail.helpers import held_maildir, hold

NOW = 2_000_000_000.0


class ScriptedCourier:
    """Answers each recipient from a table; records what it was given."""

    def __init__(self, answers: dict[str, Handover]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, bytes]] = []
        self.closed = False

    def send(self, message: HeldMessage, body: IO[bytes]) -> "Deferred[Handover]":
        self.sent.append((message.sender, message.recipient, body.read()))
        return succeed(self.answers.get(message.recipient, Handover("K", "127.0.0.1 accepted message.\n")))

    def close(self) -> "Deferred[None]":
        self.closed = True
        return succeed(None)


class HandOverTests(unittest.TestCase):
    def setUp(self) -> None:
        self.maildir = held_maildir(os.path.abspath(self.mktemp()))
        self.said: list[str] = []
        self.bounced: list[tuple[str, str, bool]] = []

    def bounce(self, message: HeldMessage, report: str, too_old: bool) -> int | None:
        self.bounced.append((message.recipient, report, too_old))
        return None if message.sender == "#@[]" else 77

    def handover(self, courier: ScriptedCourier, lifetime: float | None = None, bounce=True):  # type: ignore[no-untyped-def]
        d = ensureDeferred(hand_over(self.maildir, "p-", courier, self.said.append, lambda: NOW, lifetime,
                                     self.bounce if bounce else None))
        return self.successResultOf(d)

    def left(self) -> list[str]:
        return sorted(m.recipient for m in scan(self.maildir, ""))

    def test_accepted_removed_deferred_kept_refused_bounced(self) -> None:
        hold(self.maildir, "1", "s@x", "p-ok@x", mtime=NOW - 30)
        hold(self.maildir, "2", "s@x", "p-later@x", mtime=NOW - 20)
        hold(self.maildir, "3", "s@x", "p-no@x", mtime=NOW - 10)
        hold(self.maildir, "4", "s@x", "other-ok@x", mtime=NOW - 5)
        courier = ScriptedCourier({"later@x": Handover("Z", "h said 451\n"), "no@x": Handover("D", "h said 550\n")})
        result = self.handover(courier)
        self.assertEqual([s[1] for s in courier.sent], ["ok@x", "later@x", "no@x"])
        self.assertEqual(courier.sent[0], ("s@x", "ok@x", b"Subject: x\n\nhello\n"))
        self.assertEqual((result.handed_over, result.bounced, result.left), (1, 1, 1))
        self.assertEqual(self.left(), ["other-ok@x", "p-later@x"])
        self.assertEqual(self.bounced, [("no@x", "h said 550\n", False)])
        self.assertTrue(courier.closed)
        self.assertEqual(self.said, [
            "info: new/1 succeeded: 127.0.0.1 accepted message.",
            "info: new/2 failed temporarily: h said 451",
            "info: new/3 bounced: h said 550; returned to the sender: qp 77",
        ])

    def test_held_too_long_is_bounced(self) -> None:
        hold(self.maildir, "old", "s@x", "p-later@x", mtime=NOW - 100)
        hold(self.maildir, "young", "s@x", "p-later2@x", mtime=NOW - 10)
        courier = ScriptedCourier({r: Handover("Z", "busy\n") for r in ("later@x", "later2@x")})
        result = self.handover(courier, lifetime=50)
        self.assertEqual(self.bounced, [("later@x", "busy\n", True)])
        self.assertEqual((result.bounced, result.left), (1, 1))
        self.assertEqual(self.left(), ["p-later2@x"])

    def test_without_bounces_refused_mail_stays(self) -> None:
        hold(self.maildir, "1", "s@x", "p-no@x")
        result = self.handover(ScriptedCourier({"no@x": Handover("D", "h said 550\n")}), bounce=False)
        self.assertEqual(result.left, 1)
        self.assertEqual(self.said, ["info: new/1 failed: h said 550"])
        self.assertEqual(self.left(), ["p-no@x"])

    def test_a_bounce_the_queue_refuses_keeps_the_file(self) -> None:
        hold(self.maildir, "1", "s@x", "p-no@x")

        def refuse(message: HeldMessage, report: str, too_old: bool) -> int | None:
            raise QueueRefused("qq write error or disk full (#4.3.0)")

        d = ensureDeferred(hand_over(self.maildir, "p-", ScriptedCourier({"no@x": Handover("D", "no\n")}),
                                     self.said.append, lambda: NOW, None, refuse))
        self.assertEqual(self.successResultOf(d).left, 1)
        self.assertEqual(self.said, ["warning: unable to bounce new/1: qq write error or disk full (#4.3.0)"])
        self.assertEqual(self.left(), ["p-no@x"])

    def test_triple_bounce_discarded(self) -> None:
        hold(self.maildir, "1", "#@[]", "p-no@x")
        result = self.handover(ScriptedCourier({"no@x": Handover("D", "no\n")}))
        self.assertEqual((result.bounced, result.left), (1, 0))
        self.assertEqual(self.said, ["info: new/1 bounced: no; discarding it: triple bounce"])

    def test_unreachable_server_ends_the_run(self) -> None:
        for i in range(3):
            hold(self.maildir, str(i), "s@x", f"p-r{i}@x", mtime=NOW - 10 + i)
        courier = ScriptedCourier({"r0@x": Handover("Z", "no connection\n", stop=True)})
        result = self.handover(courier)
        self.assertEqual(len(courier.sent), 1)
        self.assertEqual(result.left, 3)
        self.assertEqual(len(self.left()), 3)

    def test_a_courier_error_keeps_every_file_and_closes(self) -> None:
        hold(self.maildir, "1", "s@x", "p-a@x")

        class Broken(ScriptedCourier):
            def send(self, message: HeldMessage, body: IO[bytes]) -> "Deferred[Handover]":
                raise RuntimeError("boom")

        courier = Broken({})
        self.failureResultOf(ensureDeferred(hand_over(self.maildir, "p-", courier, self.said.append, lambda: NOW)),
                             RuntimeError)
        self.assertTrue(courier.closed)
        self.assertEqual(self.left(), ["p-a@x"])

    def test_remove_follows_a_move_to_cur(self) -> None:
        hold(self.maildir, "9.x.host", "s@x", "p-a@x")
        [message] = scan(self.maildir, "p-")
        os.rename(message.path, os.path.join(self.maildir, "cur", "9.x.host:2,"))
        remove_held(self.maildir, message)
        self.assertEqual(os.listdir(os.path.join(self.maildir, "cur")), [])
        self.assertRaises(FileNotFoundError, remove_held, self.maildir, message)
