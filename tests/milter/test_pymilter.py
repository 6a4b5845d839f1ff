"""
The client against a real milter: tests/milter/pymilterfilter.py on Sendmail's libmilter
(Debian's python3-milter) in a child process, listening on a unix socket in a temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

from twisted.internet import reactor
from twisted.internet.interfaces import IReactorTime
from twisted.trial import unittest

from pymta.control import load_controls
from pymta.milter import negotiation as n
from pymta.milter.api import CONTINUE, Action, AddHeader, AddRecipient, ChangeHeader, ChangeSender, ConnectInfo, \
    DeleteRecipient, EndOfMessage, InsertHeader, MilterSession, Quarantine, ReplaceBody, Verdict
from pymta.milter.chain import MilterChain
from pymta.milter.sessions import Milters
from tests.milter.wired import Message
from tests.milterdaemons import answers
from tests.packages import ensure_debian_python_module
from tests.waiting import wait_until

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pymilterfilter.py")
INFO = ConnectInfo("client.example", "4", "192.0.2.7", 40000)
CONNECT_MACROS = {"j": "mx.pymta.example", "{daemon_name}": "pymta-smtpd", "{client_addr}": "192.0.2.7",
                  "{client_name}": "client.example"}
HEADERS = [("From", " a@example.org"), ("To", " b@example.org"), ("Subject", " test")]
BODY = b"hello\r\nworld\r\n"
MESSAGE = Message(HEADERS, BODY)
CLOCK: IReactorTime = reactor  # type: ignore[assignment]  # the global reactor provides IReactorTime


class PymilterTestCase(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        python = ensure_debian_python_module("Milter", "python3-milter")
        if python is None:
            raise unittest.SkipTest("needs Debian's python3-milter (pymilter) for /usr/bin/python3")
        self.python = python
        self.dir = tempfile.mkdtemp(prefix="pymta-milter-")  # short: a unix socket's path has 107 bytes at most
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.makedirs(os.path.join(self.dir, "control"))
        self.lines: list[str] = []

    def start_filter(self, name: str, *args: str, options: str = "") -> str:
        """Start a filter called C{name}; its line goes into control/milters."""
        sock = os.path.join(self.dir, f"{name}.sock")
        seen = os.path.join(self.dir, f"{name}.seen")
        child = subprocess.Popen([self.python, SCRIPT, "--socket", f"unix:{sock}", "--seen", seen, *args],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self._stop, child)
        # the socket file exists once libmilter has bound it, a moment before it listens: wait for a connect
        self.assertTrue(wait_until(lambda: answers(sock) or child.poll() is not None), "filter never listened")
        self.assertIsNone(child.poll(), "the filter exited")
        self.lines.append(f"{name} unix:{sock} {options}".strip())
        return seen

    @staticmethod
    def _stop(child: subprocess.Popen[bytes]) -> None:
        child.kill()
        child.wait(30)

    def session(self) -> MilterSession:
        with open(os.path.join(self.dir, "control", "milters"), "w") as f:
            f.write("".join(line + "\n" for line in self.lines))
        controls = load_controls(self.dir)
        session = Milters(lambda: controls, CLOCK).session()
        assert session is not None
        self.addCleanup(session.close)
        return session

    def seen(self, path: str) -> list[dict[str, object]]:
        with open(path) as f:
            return [json.loads(line) for line in f]

    async def up_to_data(self, session: MilterSession, recipients: tuple[str, ...] = ("b@example.org",)) -> list[Verdict]:
        verdicts = [await session.connect(INFO, CONNECT_MACROS), await session.helo("client.example", {}),
                    await session.mail("a@example.org", ["SIZE=100"], {"i": "Q1", "{mail_addr}": "a@example.org"})]
        for recipient in recipients:
            verdicts.append(await session.rcpt(recipient, [], {"i": "Q1", "{rcpt_addr}": recipient}))
        verdicts.append(await session.data({"i": "Q1"}))
        return verdicts


class StageTests(PymilterTestCase):
    async def test_every_stage_and_its_macros(self) -> None:
        seen = self.start_filter("plain")
        session = self.session()
        self.assertEqual(await self.up_to_data(session), [CONTINUE] * 5)
        self.assertEqual(await session.end_of_message(MESSAGE, {"i": "Q1"}, {"i": "Q1"}), EndOfMessage(CONTINUE))
        session.close()
        stages = self.seen(seen)
        self.assertEqual([s["stage"] for s in stages],
                         ["connect", "helo", "mail", "rcpt", "data", "header", "header", "header", "eoh", "body", "eom"])
        self.assertEqual(stages[0]["args"], ["client.example", "('192.0.2.7', 40000)"])
        self.assertEqual(stages[0]["macros"], CONNECT_MACROS)
        self.assertEqual(stages[2]["args"], ["<a@example.org>", "SIZE=100"])
        self.assertEqual(stages[2]["macros"], {"j": "mx.pymta.example", "{daemon_name}": "pymta-smtpd",
                                               "{client_addr}": "192.0.2.7", "{client_name}": "client.example",
                                               "i": "Q1", "{mail_addr}": "a@example.org"})
        self.assertEqual(stages[3]["args"], ["<b@example.org>"])
        self.assertEqual(stages[5]["args"], ["From", "a@example.org"])
        self.assertEqual(stages[9]["args"], ["hello\r\nworld\r\n"])

    async def test_reject_one_recipient_with_its_reply(self) -> None:
        self.start_filter("picky", "--reject-rcpt", "bad@example.org")
        session = self.session()
        verdicts = await self.up_to_data(session, ("bad@example.org", "b@example.org"))
        self.assertEqual(verdicts[3], Verdict(Action.REJECT, "550 5.7.1 no mail for bad@example.org", "picky"))
        self.assertEqual(verdicts[4:], [CONTINUE, CONTINUE])

    async def test_custom_tempfail_at_mail(self) -> None:
        self.start_filter("grey", "--reply-mail", "451 4.7.1 greylisted, come back later")
        session = self.session()
        await session.connect(INFO, {})
        self.assertEqual(await session.mail("a@example.org", [], {}),
                         Verdict(Action.TEMPFAIL, "451 4.7.1 greylisted, come back later", "grey"))
        session.abort()
        self.assertEqual((await session.mail("c@example.org", [], {})).action, Action.TEMPFAIL)

    async def test_tempfail_and_discard_at_end_of_message(self) -> None:
        self.start_filter("later", "--tempfail-eom")
        session = self.session()
        await self.up_to_data(session)
        self.assertEqual(await session.end_of_message(MESSAGE, {}, {}),
                         EndOfMessage(Verdict(Action.TEMPFAIL, "451 4.7.1 try again later, says the filter", "later")))
        self.lines = []
        self.start_filter("bin", "--discard-eom")
        session = self.session()
        await self.up_to_data(session)
        self.assertEqual(await session.end_of_message(MESSAGE, {}, {}), EndOfMessage(Verdict(Action.DISCARD, None, "bin")))

    async def test_every_modification(self) -> None:
        self.start_filter("editor", "--add-header", "X-Scanned: yes", "--insert-header", "X-Top: first",
                          "--change-header", "Subject: [filtered] test", "--add-rcpt", "c@example.org",
                          "--del-rcpt", "b@example.org", "--chgfrom", "bounces@example.org",
                          "--replace-body", "replaced\r\n", "--quarantine", "looks odd")
        session = self.session()
        await self.up_to_data(session)
        result = await session.end_of_message(MESSAGE, {}, {})
        self.assertEqual(result.verdict, CONTINUE)
        self.assertEqual(set(result.modifications), {
            AddHeader("X-Scanned", "yes"), InsertHeader(0, "X-Top", "first"), ChangeHeader(1, "Subject", "[filtered] test"),
            AddRecipient("c@example.org"), DeleteRecipient("b@example.org"), ChangeSender("bounces@example.org"),
            ReplaceBody(b"replaced\r\n"), Quarantine("looks odd")})
        self.assertEqual(len(result.modifications), 8)

    async def test_header_answers_left_out(self) -> None:
        seen = self.start_filter("quiet", "--noreply-headers")
        session = self.session()
        await self.up_to_data(session)
        assert isinstance(session, MilterChain)
        self.assertTrue(session.filters[0].negotiated.steps & n.SMFIP_NR_HDR)
        self.assertEqual(await session.end_of_message(MESSAGE, {}, {}), EndOfMessage(CONTINUE))
        self.assertEqual([s["stage"] for s in self.seen(seen)].count("header"), 3)

    async def test_later_filter_sees_the_earlier_ones_header(self) -> None:
        self.start_filter("first", "--add-header", "X-First: was here")
        seen = self.start_filter("second")
        session = self.session()
        await self.up_to_data(session)
        result = await session.end_of_message(MESSAGE, {}, {})
        self.assertEqual(result, EndOfMessage(CONTINUE, (AddHeader("X-First", "was here"),)))
        headers = [s["args"] for s in self.seen(seen) if s["stage"] == "header"]
        self.assertEqual(headers[-1], ["X-First", "was here"])


class FailureTests(PymilterTestCase):
    async def test_filter_down(self) -> None:
        self.lines = [f"gone unix:{self.dir}/nothing.sock", f"optional unix:{self.dir}/nothing.sock default=accept"]
        session = self.session()
        self.assertEqual(await session.connect(INFO, {}), Verdict(Action.TEMPFAIL, None, "gone"))
        self.lines = self.lines[1:]
        session = self.session()
        self.assertEqual(await self.up_to_data(session), [CONTINUE] * 5)

    async def test_stalled_filter_times_out_while_other_sessions_go_on(self) -> None:
        self.start_filter("stuck", "--silent-at", "mail", options="command=3")
        stuck = self.session()
        self.lines = []
        self.start_filter("fine")
        fine = self.session()
        await stuck.connect(INFO, {})
        waiting = stuck.mail("a@example.org", [], {})
        self.assertEqual(await self.up_to_data(fine), [CONTINUE] * 5)
        self.assertEqual(await fine.end_of_message(MESSAGE, {}, {}), EndOfMessage(CONTINUE))
        self.assertFalse(waiting.called, "the stalled filter answered")
        self.assertEqual(await waiting, Verdict(Action.TEMPFAIL, None, "stuck"))
        self.assertEqual((await stuck.rcpt("b@example.org", [], {})).action, Action.TEMPFAIL)

