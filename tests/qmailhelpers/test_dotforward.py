"""Tests for the dot-forward helper: a .forward read in the user's home, forwarding into a real queue directory."""

from __future__ import annotations

import os

from tests.qmailhelpers.helpers import MESSAGE, run_line
from tests.qmailhelpers.test_forward import QueueFixture


class DotForwardTests(QueueFixture):
    def setUp(self) -> None:
        super().setUp()
        self.home = os.path.join(self.root, "home")
        os.mkdir(self.home)
        os.mkdir(os.path.join(self.root, "control"))
        with open(os.path.join(self.root, "control", "me"), "w") as f:
            f.write("me.example\n")

    def forward(self, text: str, mode: int = 0o644, name: str = ".forward") -> None:
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def dotforward(self, args: str = ".forward", message: bytes = MESSAGE) -> tuple[int, str]:
        return run_line(f"dot-forward {args}", env=self.env(USER="joe", HOST="example.org"), cwd=self.home,
                        message=message)

    def test_no_file_or_empty_file(self) -> None:
        self.assertEqual(self.dotforward(), (0, ""))
        self.forward("")
        self.assertEqual(self.dotforward(".nothere .forward"), (0, ""))

    def test_forward_program_file(self) -> None:
        mbox = os.path.join(self.home, "mbox")
        self.forward(f'# mine\nbob@example.net, "|cat > prog.out"\n{mbox}, Carol <carol@example.net>\n')
        code, output = self.dotforward()
        self.assertEqual(code, 99)
        self.assertRegex(output, r"^dot-forward: qp \d+\n$")
        self.assertEqual(self.queued(), [("alice@example.com", ("bob@example.net", "carol@example.net"),
                                          b"Delivered-To: joe-x@example.org\n" + MESSAGE)])
        head = (b"From alice@example.com Tue Nov 24 21:49:31 2026\n"
                b"Return-Path: <alice@example.com>\nDelivered-To: joe-x@example.org\n")
        with open(os.path.join(self.home, "prog.out"), "rb") as f:
            self.assertEqual(f.read(), head + MESSAGE)
        with open(mbox, "rb") as f:
            self.assertEqual(f.read(), head + MESSAGE.replace(b"\nFrom the start", b"\n>From the start") + b"\n")

    def test_direct_delivery(self) -> None:
        for text in ("\\joe, bob@example.net\n", "JOE@example.org\n", "joe\n"):
            self.forward(text)
            self.assertEqual(self.dotforward()[0], 0, text)
        self.assertEqual(len(self.queued()), 1)

    def test_writable_file_defers(self) -> None:
        self.forward("bob@example.net\n", 0o664)
        self.assertEqual(self.dotforward(), (111, "dot-forward: fatal: Uh-oh: .forward file is writable. (#4.7.0)\n"))
        self.assertEqual(self.queued(), [])

    def test_failing_program(self) -> None:
        # a program that stops before reading the message is judged by its exit code (a big message fills the pipe)
        big = MESSAGE + (b"x" * 99 + b"\n") * 4000
        self.forward('"|exit 100", bob@example.net\n')
        self.assertEqual(self.dotforward(message=big)[0], 100)
        self.forward('"|exit 1"\n')
        self.assertEqual(self.dotforward(message=big)[0], 111)
        self.forward('"|exit 0"\n')
        self.assertEqual(self.dotforward(message=big), (99, ""))
        self.assertEqual(self.queued(), [])

    def test_show_and_include_refused(self) -> None:
        self.forward('bob, "|vacation joe", /var/mail/joe, \\joe\n')
        self.assertEqual(self.dotforward("-n .forward"), (0, "|vacation joe\n/var/mail/joe\n&bob@me.example\n"
                                                          "# direct delivery\n"))
        self.forward(":include:/etc/list\n")
        self.assertEqual(self.dotforward(), (111, "dot-forward: fatal: .forward:1: :include: is not supported in .forward files\n"))
