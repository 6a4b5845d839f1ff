"""Tests for pymta.cli.qread: qmail-qread's exact listing."""

import io
import os

from twisted.trial import unittest

from pymta.cli import qread
from pymta.queue.layout import QueueLayout
from pymta.queue.disk import QueueDisk
from pymta.queue.reasons import Reason, append_reasons
from pymta.queue.store import Queue

BORN = 1795643389  # 25 Nov 2026 21:49:49 GMT


class QreadTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        self.layout = QueueLayout(os.path.join(self.root, "queue"))
        self.layout.create()
        self.queue = Queue(QueueDisk.plain(self.layout))

    def preprocessed(self, sender: bytes, local: bytes = b"", remote: bytes = b"", body: bytes = b"x\n") -> int:
        """A message as the scheduler leaves it after preprocessing."""
        m = self.queue.begin("by uid 0", 0, 1)
        m.write(body)
        mid = m.commit("ignored@x", []).message_id
        os.unlink(self.layout.todo(mid))
        os.unlink(self.layout.intd(mid))
        with open(self.layout.info(mid), "wb") as f:
            f.write(b"F" + sender + b"\0")
        os.utime(self.layout.info(mid), (BORN, BORN))
        for name, data in (("local", local), ("remote", remote)):
            if data:
                with open(self.layout.channel(name, mid), "wb") as f:
                    f.write(data)
        return mid

    def run_main(self):
        out = io.StringIO()
        self.patch(qread.sys, "stdout", out)
        return qread.main(["--root", self.root]), out.getvalue()

    def test_listing(self) -> None:
        mid = self.preprocessed(b"me@test.example", local=b"Tu@here\0Ddone@here\0", remote=b"Ttmp@other.example\0")
        size = os.path.getsize(self.layout.mess(mid))
        self.assertEqual(
            self.run_main(),
            (
                0,
                f"25 Nov 2026 21:49:49 GMT  #{mid}  {size}  <me@test.example> \n"
                "\tlocal\tu@here\n"
                "  done\tlocal\tdone@here\n"
                "\tremote\ttmp@other.example\n",
            ),
        )

    def test_bouncing_and_unprintable(self) -> None:
        mid = self.preprocessed(b"", remote=b"Tj\xc3\xb6rg@x\x01y\0")
        open(self.layout.bounce(mid), "wb").close()
        size = os.path.getsize(self.layout.mess(mid))
        self.assertEqual(
            self.run_main()[1],
            f"25 Nov 2026 21:49:49 GMT  #{mid}  {size}  <>  bouncing\n\tremote\tj__rg@x_y\n",
        )

    def test_reason_under_each_waiting_recipient(self) -> None:
        mid = self.preprocessed(b"me@test.example", local=b"Tu@here\0Ddone@here\0",
                                remote=b"Ttmp@other.example\0Tj\xc3\xb6rg@other.example\0")
        size = os.path.getsize(self.layout.mess(mid))
        append_reasons(QueueDisk.plain(self.layout), mid, [
            Reason("local", "u@here", BORN + 100, "Mailbox busy.\n"),
            Reason("local", "done@here", BORN + 100, "not shown: delivered since"),
            Reason("remote", "tmp@other.example", BORN + 400, "Connected to 192.0.2.1 but greeting failed.\n"
                   "Remote host said: 421 \x1b[1mbusy\r\n"),
            Reason("remote", "j\u00f6rg@other.example", BORN + 400, "first"),
            Reason("remote", "j\u00f6rg@other.example", BORN + 900, "second"),
        ])
        self.assertEqual(
            self.run_main(),
            (
                0,
                f"25 Nov 2026 21:49:49 GMT  #{mid}  {size}  <me@test.example> \n"
                "\tlocal\tu@here\n"
                "\t\t25 Nov 2026 21:51:29 GMT (Mailbox busy.)\n"
                "  done\tlocal\tdone@here\n"
                "\tremote\ttmp@other.example\n"
                "\t\t25 Nov 2026 21:56:29 GMT (Connected to 192.0.2.1 but greeting failed./"
                "Remote host said: 421 _[1mbusy_)\n"
                "\tremote\tj__rg@other.example\n"
                "\t\t25 Nov 2026 22:04:49 GMT (second)\n",
            ),
        )

    def test_reasons_older_than_the_message_or_mangled_are_not_shown(self) -> None:
        mid = self.preprocessed(b"me@test.example", remote=b"Ttmp@other.example\0")
        append_reasons(QueueDisk.plain(self.layout), mid,
                       [Reason("remote", "tmp@other.example", BORN - 1, "an earlier message with this id")])
        with open(self.layout.reason(mid), "ab") as f:
            f.write(b"\x00\x01garbage\n{\"ch\": 1}\n")
        self.assertEqual(self.run_main()[1].splitlines()[1:], ["\tremote\ttmp@other.example"])

    def test_channel_reason_applies_to_its_recipients(self) -> None:
        mid = self.preprocessed(b"me@test.example", local=b"Tu@here\0", remote=b"Ttmp@other.example\0")
        append_reasons(QueueDisk.plain(self.layout), mid, [Reason("remote", "", BORN + 5, "trouble opening x")])
        self.assertEqual(self.run_main()[1].splitlines()[1:], [
            "\tlocal\tu@here", "\tremote\ttmp@other.example", "\t\t25 Nov 2026 21:49:54 GMT (trouble opening x)"])

    def test_trouble_with_message(self) -> None:
        mid = self.preprocessed(b"a@b", remote=b"Tc@d\0")
        os.unlink(self.layout.mess(mid))
        code, out = self.run_main()
        self.assertEqual(code, 0)
        self.assertEqual(out, f"warning: trouble with #{mid}: No such file or directory\n")

    def test_unpreprocessed_not_listed(self) -> None:
        self.queue.begin("by uid 0", 0, 1).commit("a@b", ["c@d"])
        self.assertEqual(self.run_main(), (0, ""))

    def test_missing_queue(self) -> None:
        out = io.StringIO()
        self.patch(qread.sys, "stdout", out)
        self.assertEqual(qread.main(["--root", self.mktemp()]), 111)
        self.assertIn("fatal: unable to read", out.getvalue())
