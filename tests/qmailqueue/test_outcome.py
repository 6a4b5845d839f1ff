"""What a QMAILQUEUE program's end means: qmail's qmail_close, reply texts from pymta.queue.errors."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pymta.qmailqueue.outcome import custom_reply, program_failure


class OutcomeTests(SynchronousTestCase):
    def test_exit_0_after_the_whole_message_is_success(self) -> None:
        self.assertIsNone(program_failure(0, None))

    def test_exit_0_before_the_whole_message_is_a_read_error(self) -> None:
        failure = program_failure(0, None, complete=False)
        assert failure is not None
        self.assertEqual((failure.text, failure.permanent, failure.exit_code), ("qq read error (#4.3.0)", False, 54))

    def test_qmail_queue_exit_codes(self) -> None:
        for code, text, permanent in (
            (31, "mail server permanently rejected message (#5.3.0)", True),
            (71, "mail server temporarily rejected message (#4.3.0)", False),
            (11, "envelope address too long for qq (#5.1.3)", True),
            (53, "qq write error or disk full (#4.3.0)", False),
            (25, "qq permanent problem (#5.3.0)", True),
            (1, "qq temporary problem (#4.3.0)", False),
            (120, "unable to exec qq (#4.3.0)", False),
        ):
            failure = program_failure(code, None)
            assert failure is not None
            self.assertEqual((failure.text, failure.permanent, failure.exit_code), (text, permanent, code))

    def test_killed_is_a_crash(self) -> None:
        failure = program_failure(None, 9)
        assert failure is not None
        self.assertEqual((failure.text, failure.permanent), ("qq crashed (#4.3.0)", False))
        self.assertIn("signal 9", str(failure))

    def test_exit_82_says_its_own_reply(self) -> None:
        failure = program_failure(82, None, b"Dcustom no thanks (#5.7.1)\n")
        assert failure is not None
        self.assertEqual((failure.text, failure.permanent), ("custom no thanks (#5.7.1)", True))
        failure = program_failure(82, None, b"Zbusy, later (#4.3.0)")
        assert failure is not None
        self.assertEqual((failure.text, failure.permanent), ("busy, later (#4.3.0)", False))

    def test_exit_82_without_a_reply_is_a_temporary_problem(self) -> None:
        for data in (b"", b"D", b"Dx", b"Xwhatever text"):
            failure = program_failure(82, None, data)
            assert failure is not None
            self.assertEqual((failure.text, failure.permanent), ("qq temporary problem (#4.3.0)", False), data)

    def test_a_reply_is_one_printable_line(self) -> None:
        self.assertEqual(custom_reply(b"Dno\x07 thanks\r\n250 ok"), ("no? thanks", True))
        self.assertEqual(custom_reply(b"D" + b"x" * 400), ("x" * 254, True))
