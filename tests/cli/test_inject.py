"""Tests for pymta.cli.inject (pymta inject) and pymta.inject.submit."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import inject as inject_cli
from pymta.interfaces import QueueReceipt, QueueRefused
from pymta.queue.envelope import parse_todo
from pymta.queue.layout import QueueLayout


def make_root(testcase: SynchronousTestCase, me: str = "mail.example.com") -> str:
    root = os.path.abspath(testcase.mktemp())
    os.makedirs(os.path.join(root, "control"))
    with open(os.path.join(root, "control", "me"), "w") as f:
        f.write(me + "\n")
    return root


class FakeQueue:
    """Records what would be queued; optionally refuses."""

    def __init__(self, refuse: QueueRefused | None = None) -> None:
        self.calls: list[tuple[str, bytes, str, list[str]]] = []
        self.refuse = refuse

    def __call__(self, root, message, sender, recipients):  # type: ignore[no-untyped-def]
        data = message.read()
        self.calls.append((root, data, sender, list(recipients)))
        if self.refuse is not None:
            raise self.refuse
        return QueueReceipt(message_id=1234, qp=99)


class InjectCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_root(self)
        self.env = {"USER": "joe", "PYMTA_ROOT": self.root}
        self.err = io.StringIO()
        self.out = io.BytesIO()

    def call(self, argv: list[str], data: bytes, queue: FakeQueue | None = None) -> int:
        return inject_cli.main(argv, stdin=io.BytesIO(data), stdout=self.out, stderr=self.err, env=self.env,
                               enqueue=queue or FakeQueue())

    def test_queues_with_envelope(self) -> None:
        queue = FakeQueue()
        status = self.call(["-f", "boss", "bob", "carol@x.example"], b"Subject: hi\n\nbody\n", queue)
        self.assertEqual((status, self.err.getvalue()), (0, ""))
        [(root, data, sender, recipients)] = queue.calls
        self.assertEqual(root, self.root)
        self.assertEqual(sender, "boss@mail.example.com")
        self.assertEqual(recipients, ["bob@mail.example.com", "carol@x.example"])
        self.assertIn(b"\nFrom: joe@mail.example.com\nCc: recipient list not shown: ;\nSubject: hi\n\nbody\n", data)
        self.assertTrue(data.startswith(b"Date: "))
        self.assertEqual(self.out.getvalue(), b"")

    def test_attached_f_and_clustered_flags(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["-Hfboss@x.example", "arg@x.example"], b"To: hdr@x.example\n\n", queue), 0)
        [(_, _, sender, recipients)] = queue.calls
        self.assertEqual(sender, "boss@x.example")
        self.assertEqual(recipients, ["arg@x.example", "hdr@x.example"])

    def test_dash_n_prints_and_does_not_queue(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["-n", "bob"], b"To: x@y.z\n\nhello\n", queue), 0)
        self.assertEqual(queue.calls, [])
        output = self.out.getvalue()
        self.assertTrue(output.startswith(b"Return-Path: <joe@mail.example.com>\nDate: "))
        self.assertTrue(output.endswith(b"To: x@y.z\n\nhello\n"))

    def test_n_then_capital_n_queues(self) -> None:
        queue = FakeQueue()
        self.assertEqual(self.call(["-nN", "bob"], b"\n", queue), 0)
        self.assertEqual(len(queue.calls), 1)

    def test_root_option(self) -> None:
        other = make_root(self, me="other.example")
        queue = FakeQueue()
        self.assertEqual(self.call(["--root", other, "bob"], b"\n", queue), 0)
        self.assertEqual(queue.calls[0][0], other)
        self.assertEqual(queue.calls[0][3], ["bob@other.example"])

    def test_bad_option_is_usage_100(self) -> None:
        self.assertEqual(self.call(["-x"], b""), 100)
        self.assertIn("usage: pymta inject", self.err.getvalue())
        self.assertEqual(self.call(["-f"], b""), 100)

    def test_unparsable_address_100(self) -> None:
        self.assertEqual(self.call(["a@(b"], b"\n"), 100)
        self.assertEqual(self.err.getvalue(), "pymta inject: fatal: unable to parse address: a@(b\n")

    def test_unparsable_from_100(self) -> None:
        self.assertEqual(self.call([], b"From: <x\nTo: a@b.c\n\n"), 100)
        self.assertEqual(self.err.getvalue(), "pymta inject: fatal: unable to parse this line:\nFrom: <x\n")

    def test_permanent_refusal_100(self) -> None:
        queue = FakeQueue(QueueRefused("envelope address too long for qq (#5.1.3)", permanent=True))
        self.assertEqual(self.call(["bob"], b"\n", queue), 100)
        self.assertEqual(self.err.getvalue(), "pymta inject: fatal: envelope address too long for qq (#5.1.3)\n")

    def test_temporary_refusal_111(self) -> None:
        queue = FakeQueue(QueueRefused("qq write error or disk full (#4.3.0)", permanent=False))
        self.assertEqual(self.call(["bob"], b"\n", queue), 111)
        self.assertEqual(self.err.getvalue(), "pymta inject: fatal: qq write error or disk full (#4.3.0)\n")

    def test_malformed_control_file_111(self) -> None:
        with open(os.path.join(self.root, "control", "databytes"), "w") as f:
            f.write("lots\n")
        self.assertEqual(self.call(["bob"], b"\n"), 111)
        self.assertIn("pymta inject: fatal: unable to read controls:", self.err.getvalue())
        self.assertIn("databytes:1", self.err.getvalue())

    def test_read_error_111(self) -> None:
        class Broken(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, b):  # type: ignore[no-untyped-def]
                raise OSError(5, "Input/output error")

        status = inject_cli.main(["bob"], stdin=io.BufferedReader(Broken()), stdout=self.out, stderr=self.err,
                                 env=self.env, enqueue=FakeQueue())
        self.assertEqual(status, 111)
        self.assertEqual(self.err.getvalue(), "pymta inject: fatal: read error: Input/output error\n")

    def test_large_body_is_streamed_unchanged(self) -> None:
        queue = FakeQueue()
        body = b"".join(b"line %06d " % i + b"x" * 60 + b"\r\n" for i in range(20000))
        self.assertEqual(self.call(["bob"], b"Subject: big\r\n\r\n" + body, queue), 0)
        data = queue.calls[0][1]
        self.assertTrue(data.endswith(b"Subject: big\n\n" + body.replace(b"\r\n", b"\n")))


class RealQueueTests(SynchronousTestCase):
    """pymta inject writing into a real queue (direct write: no daemon, we own the queue)."""

    def setUp(self) -> None:
        self.root = make_root(self)
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()

    def queued(self) -> list[int]:
        return sorted(int(name) for name in os.listdir(self.layout.dir("todo")))

    def test_message_lands_in_todo_and_mess(self) -> None:
        err = io.StringIO()
        status = inject_cli.main(
            ["-f", "sender@x.example", "bob", "carol@y.example"],
            stdin=io.BytesIO(b"Subject: queued\r\n\r\nhello\r\n"), stdout=io.BytesIO(), stderr=err,
            env={"USER": "joe", "PYMTA_ROOT": self.root},
        )
        self.assertEqual((status, err.getvalue()), (0, ""))
        [message_id] = self.queued()
        with open(self.layout.todo(message_id), "rb") as f:
            envelope = parse_todo(f.read())
        self.assertEqual(envelope.sender, "sender@x.example")
        self.assertEqual(envelope.recipients, ("bob@mail.example.com", "carol@y.example"))
        self.assertEqual(envelope.uid, os.getuid())
        with open(self.layout.mess(message_id), "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"Received: (pymta "))
        self.assertIn(f"invoked by uid {os.getuid()}".encode(), data)
        self.assertIn(b"\nFrom: joe@mail.example.com\n", data)
        self.assertTrue(data.endswith(b"Subject: queued\n\nhello\n"))

    def test_bad_envelope_address_is_refused_and_nothing_queued(self) -> None:
        err = io.StringIO()
        status = inject_cli.main(
            ["x" * 1100 + "@y.example"], stdin=io.BytesIO(b"\n"), stdout=io.BytesIO(), stderr=err,
            env={"USER": "joe", "PYMTA_ROOT": self.root},
        )
        self.assertEqual(status, 100)
        self.assertIn("pymta inject: fatal: envelope address too long", err.getvalue())
        self.assertEqual(self.queued(), [])
        self.assertEqual(os.listdir(self.layout.dir("pid")), [])

    def test_newline_in_an_address_is_refused_and_nothing_queued(self) -> None:
        for argv in (["bad\nrecipient@x.example"], ["-f", "bad\nsender@x.example", "ok@x.example"]):
            err = io.StringIO()
            status = inject_cli.main(argv, stdin=io.BytesIO(b"\n"), stdout=io.BytesIO(), stderr=err,
                                     env={"USER": "joe", "PYMTA_ROOT": self.root})
            self.assertEqual(status, 100, err.getvalue())
            self.assertTrue(err.getvalue().startswith("pymta inject: fatal: "))
        self.assertEqual(self.queued(), [])
        self.assertEqual(os.listdir(self.layout.dir("pid")), [])

    def test_missing_root_is_temporary_with_the_reason(self) -> None:
        err = io.StringIO()
        missing = os.path.join(self.root, "missing")
        status = inject_cli.main(["--root", missing, "bob"], stdin=io.BytesIO(b"\n"), stdout=io.BytesIO(),
                                 stderr=err, env={"USER": "joe"})
        self.assertEqual(status, 111)
        self.assertIn("pymta inject: fatal: qq trouble making network connection (#4.3.0) [", err.getvalue())
        self.assertIn(f"{missing}/queue is not a queue directory", err.getvalue())

    def test_subprocess_end_to_end(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", "inject", "--root", self.root, "bob"],
            input=b"Subject: child\n\nfrom a child process\n", capture_output=True, timeout=60,
            env={**os.environ, "USER": "joe"},
        )
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        [message_id] = self.queued()
        with open(self.layout.mess(message_id), "rb") as f:
            self.assertTrue(f.read().endswith(b"Subject: child\n\nfrom a child process\n"))
