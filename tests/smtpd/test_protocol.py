"""SMTPServerProtocol over StringTransport: qmail's replies, pipelining, DATA, limits, Twisted's defects."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pymta.interfaces import QueueRefused
from pymta.smtpd.context import ListenerSettings
from tests.smtpd.helpers import MemorySink, Session, make_root


class Base(SynchronousTestCase):
    controls: dict[str, str] = {}

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), **self.controls)

    def session(self, **kw: object) -> Session:
        s = Session(self.root, **kw)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        return s


class GreetingAndCommands(Base):
    controls = {"smtpgreeting": "mail.example.org welcome", "databytes": "1000"}

    def test_greeting(self) -> None:
        s = self.session()
        self.assertEqual(s.take(), ["220 mail.example.org welcome ESMTP"])

    def test_helo(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("HELO client.example"), ["250 mail.example.org welcome"])

    def test_ehlo_keywords(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(
            s.cmd("EHLO client.example"),
            ["250-mail.example.org welcome", "250-PIPELINING", "250-8BITMIME", "250-DSN", "250 SIZE 1000"],
        )

    def test_simple_replies(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("NOOP"), ["250 ok"])
        self.assertEqual(s.cmd("RSET"), ["250 flushed"])
        self.assertEqual(s.cmd("VRFY postmaster"), ["252 send some mail, i'll try my best"])
        self.assertEqual(s.cmd("HELP")[0][:4], "214 ")
        for verb in ("EXPN x", "TURN", "", "BDAT 10", "ETRN x", "X-FOO"):
            self.assertEqual(s.cmd(verb), ["502 unimplemented (#5.5.1)"], verb)

    def test_starttls_and_auth_unimplemented_without_cert_or_submission(self) -> None:
        s = self.session(tls_transport=True)
        s.take()
        self.assertEqual(s.cmd("STARTTLS"), ["502 unimplemented (#5.5.1)"])
        self.assertEqual(s.cmd("AUTH PLAIN AGZvbwBiYXI="), ["502 unimplemented (#5.5.1)"])

    def test_quit_closes(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("QUIT"), ["221 mail.example.org welcome"])
        self.assertTrue(s.transport.disconnecting)

    def test_case_insensitive_and_bare_lf_commands(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.send(b"noop\n"), ["250 ok"])
        self.assertEqual(s.send(b"NoOp\r\n"), ["250 ok"])

    def test_out_of_order(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("RCPT TO:<a@b>"), ["503 MAIL first (#5.5.1)"])
        self.assertEqual(s.cmd("DATA"), ["503 MAIL first (#5.5.1)"])
        self.assertEqual(s.cmd("MAIL FROM:<x@y>"), ["250 ok"])
        self.assertEqual(s.cmd("DATA"), ["503 RCPT first (#5.5.1)"])

    def test_mail_without_helo_and_repeated_mail(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("MAIL FROM:<a@x>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<b@y>"), ["250 ok"])
        self.assertEqual(s.cmd("MAIL FROM:<c@x>"), ["250 ok"])
        self.assertEqual(s.cmd("DATA"), ["503 RCPT first (#5.5.1)"])

    def test_nul_and_bad_utf8(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.send(b"MAIL FROM:<a\0b@x>\r\n"), ["501 NUL character in command (#5.5.2)"])
        self.assertEqual(s.send(b"MAIL FROM:<\xff@x>\r\n"), ["501 command is not valid UTF-8 (#5.5.2)"])
        self.assertEqual(s.cmd("NOOP"), ["250 ok"])

    def test_address_too_long(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.cmd("MAIL FROM:<" + "a" * 901 + ">"), ["555 syntax error (#5.5.4)"])
        self.assertEqual(s.cmd("MAIL FROM:<" + "a" * 900 + ">"), ["250 ok"])

    def test_size_parameter(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(
            s.cmd("MAIL FROM:<a@x> SIZE=1001"),
            ["552 sorry, that message size exceeds my databytes limit (#5.3.4)"],
        )
        self.assertEqual(s.cmd("MAIL FROM:<a@x> SIZE=abc"), ["501 malformed SIZE parameter (#5.5.4)"])
        self.assertEqual(s.cmd("MAIL FROM:<a@x> SIZE=1000 BODY=8BITMIME"), ["250 ok"])

    def test_line_too_long_is_answered_and_skipped(self) -> None:
        s = self.session()
        s.take()
        # an endless line: never more than the limit is buffered
        for _ in range(50):
            s.proto.dataReceived(b"X" * 65536)
            self.assertLessEqual(len(s.proto._buf), 4096 + 65536)
        self.assertEqual(s.take(), ["500 line too long (#5.5.2)"])
        self.assertEqual(s.send(b"tail\r\nNOOP\r\n"), ["250 ok"])
        self.assertFalse(s.transport.disconnecting)

    def test_complete_long_line(self) -> None:
        s = self.session()
        s.take()
        self.assertEqual(s.send(b"NOOP " + b"y" * 5000 + b"\r\nNOOP\r\n"), ["500 line too long (#5.5.2)", "250 ok"])

    def test_timeout(self) -> None:
        s = self.session()
        s.take()
        s.clock.advance(1199)
        self.assertEqual(s.take(), [])
        s.cmd("NOOP")
        s.clock.advance(1199)
        self.assertFalse(s.transport.disconnecting)
        s.clock.advance(2)
        self.assertEqual(s.take(), ["451 timeout (#4.4.2)"])
        self.assertTrue(s.transport.disconnecting)


class Delivery(Base):
    def setUp(self) -> None:
        super().setUp()
        self.sink = MemorySink()

    def deliver(self, s: Session, body: bytes) -> list[str]:
        s.take()
        self.assertEqual(s.cmd("HELO client.example"), ["250 mx.example.org"])
        self.assertEqual(s.cmd("MAIL FROM:<a@x.example>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<b@y.example>"), ["250 ok"])
        self.assertEqual(s.cmd("DATA"), ["354 go ahead"])
        return s.send(body)

    def test_accept_and_received_line(self) -> None:
        s = self.session(sink=self.sink)
        replies = self.deliver(s, b"Subject: hi\r\n\r\nbody\r\n..dots\r\n.x\r\n.\r\n")
        self.assertEqual(replies, ["250 ok 1800000000 qp 4001"])
        w = self.sink.queued[0]
        self.assertEqual((w.sender, w.recipients), ("a@x.example", ["b@y.example"]))
        received, rest = w.data.split(b"\n", 2)[:2], w.data.split(b"\n", 2)[2]
        self.assertEqual(
            received,
            [b"Received: from unknown (HELO client.example) (192.0.2.7)", b"  by mx.example.org with SMTP; 15 Jan 2027 08:00:00 -0000"],
        )
        self.assertEqual(rest, b"Subject: hi\n\nbody\n.dots\nx\n")
        # after DATA a new MAIL is needed
        self.assertEqual(s.cmd("RCPT TO:<b@y>"), ["503 MAIL first (#5.5.1)"])

    def test_ack_only_after_finish_fires(self) -> None:
        self.sink.hold = True
        s = self.session(sink=self.sink)
        self.assertEqual(self.deliver(s, b"x\r\n.\r\nNOOP\r\n"), [])
        self.sink.release()
        self.assertEqual(s.take(), ["250 ok 1800000000 qp 4001", "250 ok"])

    def test_queue_refusals(self) -> None:
        self.sink.refuse = QueueRefused("qq write error or disk full (#4.3.0)")
        s = self.session(sink=self.sink)
        self.assertEqual(self.deliver(s, b"x\r\n.\r\n"), ["451 qq write error or disk full (#4.3.0)"])
        self.sink.refuse = QueueRefused("mail server permanently rejected message (#5.3.0)", permanent=True)
        s = self.session(sink=self.sink)
        self.assertEqual(self.deliver(s, b"x\r\n.\r\n"), ["554 mail server permanently rejected message (#5.3.0)"])

    def test_451_at_end_of_data_stays_451(self) -> None:
        # Twisted's ESMTP turned this into 550
        self.sink.hold = True
        s = self.session(sink=self.sink)
        self.deliver(s, b"x\r\n.\r\n")
        d, w = self.sink.held.pop()
        d.errback(QueueRefused("qq trouble (#4.3.0)"))
        self.assertEqual(s.take(), ["451 qq trouble (#4.3.0)"])

    def test_unexpected_sink_error_is_451(self) -> None:
        self.sink.hold = True
        s = self.session(sink=self.sink)
        self.deliver(s, b"x\r\n.\r\n")
        d, w = self.sink.held.pop()
        d.errback(OSError("socket gone"))
        self.assertEqual(s.take(), ["451 qq temporary problem (#4.3.0)"])
        self.flushLoggedErrors(OSError)

    def test_open_failure(self) -> None:
        class Broken(MemorySink):
            def open_message(self, *a, **k):  # type: ignore[no-untyped-def]
                raise OSError("no socket")

        s = self.session(sink=Broken())
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        self.assertEqual(s.cmd("DATA"), ["451 qqt failure (#4.3.0)"])
        self.flushLoggedErrors(OSError)

    def test_bare_lf_variants_refused(self) -> None:
        for body in (
            b"a\r\n\n.\nMAIL FROM:<evil@x>\r\n",
            b"a\r\n\n.\r\nMAIL FROM:<evil@x>\r\n",
            b"a\r\n.\nMAIL FROM:<evil@x>\r\n",
            b"Subject: x\r\n\r\nb\nc\r\n.\r\n",
        ):
            sink = MemorySink()
            s = self.session(sink=sink)
            self.assertEqual(self.deliver(s, body), ["451 See https://cr.yp.to/docs/smtplf.html."], body)
            self.assertTrue(s.transport.disconnecting)
            self.assertEqual(sink.queued, [])
            self.assertEqual(len(sink.aborted), 1)

    def test_bare_cr_smuggling_is_data(self) -> None:
        s = self.session(sink=self.sink)
        body = b"a\r\n.\rMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\n"
        self.assertEqual(self.deliver(s, body), ["250 ok 1800000000 qp 4001"])
        self.assertEqual(len(self.sink.queued), 1)
        # one message, the dot before the bare CR kept as qmail keeps it
        self.assertTrue(self.sink.queued[0].data.endswith(b"a\n.\rMAIL FROM:<evil@x>\nRCPT TO:<v@y>\nDATA\nsmuggled\n"))

    def test_pipelined_after_data_end(self) -> None:
        s = self.session(sink=self.sink)
        s.take()
        replies = s.send(
            b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\nhello\r\n.\r\n"
            b"MAIL FROM:<d@x>\r\nRCPT TO:<e@y>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n"
        )
        self.assertEqual(
            replies[5:],
            ["250 ok", "250 ok", "250 ok", "354 go ahead", "250 ok 1800000000 qp 4001", "250 ok", "250 ok", "354 go ahead",
             "250 ok 1800000000 qp 4002", "221 mx.example.org"],
        )
        self.assertEqual(self.sink.queued[0].recipients, ["b@y", "c@y"])

    def test_disconnect_while_committing_keeps_the_commit(self) -> None:
        self.sink.hold = True
        s = self.session(sink=self.sink)
        self.deliver(s, b"x\r\n.\r\n")
        s.close()
        self.sink.release()  # would raise AlreadyCalledError had the commit been cancelled
        self.assertEqual(len(self.sink.queued), 1)
        self.assertEqual(self.sink.aborted, [])

    def test_disconnect_mid_data_queues_nothing(self) -> None:
        s = self.session(sink=self.sink)
        self.deliver(s, b"Subject: half\r\n\r\npart")
        s.close()
        self.assertEqual(self.sink.queued, [])
        self.assertEqual(len(self.sink.aborted), 1)

    def test_endless_data_line_dropped(self) -> None:
        s = self.session(sink=self.sink)
        self.deliver(s, b"Subject: x\r\n\r\n")
        replies: list[str] = []
        for _ in range(10):
            replies += s.send(b"z" * 65536)
            self.assertLessEqual(len(s.proto._buf), 200 * 1024)
        self.assertEqual(replies, ["554 line too long, closing (#5.5.2)"])
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(self.sink.queued, [])

    def test_data_without_end_is_streamed(self) -> None:
        s = self.session(sink=self.sink)
        self.deliver(s, b"Subject: x\r\n\r\n")
        for i in range(100):
            s.send(b"line %d\r\n" % i * 100)
        w = self.sink.opened[0]
        self.assertGreater(len(w.data), 100 * 100 * 7)
        self.assertLess(len(s.proto._buf), 100)

    def test_hop_count(self) -> None:
        s = self.session(sink=self.sink)
        header = b"Received: x\r\n" * 50 + b"DELIVERED-TO: y\r\n" * 49
        self.assertEqual(self.deliver(s, header + b"\r\nReceived: body\r\n.\r\n"), ["250 ok 1800000000 qp 4001"])
        s = self.session(sink=self.sink)
        header += b"received\r\n"
        self.assertEqual(
            self.deliver(s, header + b"\r\n.\r\n"), ["554 too many hops, this message is looping (#5.4.6)"]
        )
        self.assertEqual(len(self.sink.queued), 1)


class Databytes(Base):
    controls = {"databytes": "10"}

    def test_limit_counts_stored_bytes(self) -> None:
        sink = MemorySink()
        s = self.session(sink=sink)
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        s.cmd("DATA")
        # "..12345678\r\n" is stored as ".12345678\n": 10 bytes, exactly the limit
        self.assertEqual(s.send(b"..12345678\r\n.\r\n"), ["250 ok 1800000000 qp 4001"])
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        s.cmd("DATA")
        self.assertEqual(
            s.send(b"12345678901\r\n.\r\n"), ["552 sorry, that message size exceeds my databytes limit (#5.3.4)"]
        )
        self.assertEqual(len(sink.queued), 1)

    def test_databytes_variable_from_rules(self) -> None:
        s = self.session(rules=':allow,DATABYTES="0"')
        self.assertEqual(s.take(), ["220 mx.example.org ESMTP"])
        self.assertEqual(s.cmd("EHLO x")[-1], "250 SIZE")


class Pipelining(Base):
    def test_hundred_commands_with_slow_checks(self) -> None:
        """Twisted's ESMTP ran pipelined lines while a check was pending: replies out of order."""
        pending: list[defer.Deferred] = []

        def slow_check(controls, address):  # type: ignore[no-untyped-def]
            d: defer.Deferred = defer.Deferred()
            pending.append(d)
            return d

        sink = MemorySink()
        s = self.session(sink=sink, recipient_check=slow_check)
        s.take()
        lines = [b"EHLO c", b"MAIL FROM:<a@x>"] + [b"RCPT TO:<r%d@y>" % i for i in range(96)] + [b"DATA", b"body", b".", b"QUIT"]
        replies = s.send(b"\r\n".join(lines) + b"\r\n")
        self.assertEqual(replies[-1], "250 ok")  # the MAIL reply; first RCPT pending
        answered = 0
        while pending:
            pending.pop(0).callback(True)
            answered += 1
        self.assertEqual(answered, 96)
        replies = s.take()
        self.assertEqual(replies[:96], ["250 ok"] * 96)
        self.assertEqual(replies[96:], ["354 go ahead", "250 ok 1800000000 qp 4001", "221 mx.example.org"])
        self.assertEqual(len(sink.queued[0].recipients), 96)
        self.assertTrue(sink.queued[0].data.endswith(b"\nbody\n"))

    def test_transport_paused_past_bound(self) -> None:
        held: list[defer.Deferred] = []

        def check(controls, address):  # type: ignore[no-untyped-def]
            d: defer.Deferred = defer.Deferred()
            held.append(d)
            return d

        s = self.session(recipient_check=check, junk_command_limit=100_000)  # pipelining, not junk, is tested
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        s.cmd("RCPT TO:<b@y>")
        self.assertEqual(s.transport.producerState, "producing")
        s.send(b"NOOP\r\n" * 20000)
        self.assertEqual(s.transport.producerState, "paused")
        held.pop().callback(True)
        self.assertEqual(s.transport.producerState, "producing")
        self.assertEqual(len(s.take()), 20001)

    def test_recipient_check_refuses(self) -> None:
        s = self.session(recipient_check=lambda c, a: a.startswith("known"))
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<known@mx.example.org>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<nobody@mx.example.org>"), ["550 sorry, no mailbox here by that name (#5.1.1)"])


class Recipients(Base):
    controls = {"rcpthosts": "mx.example.org\n.example.net", "badmailfrom": "spam@bad.example\n@worse.example"}

    def test_rcpthosts(self) -> None:
        s = self.session()
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<u@MX.example.org>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<u@sub.example.net>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<noat>"), ["250 ok"])
        refused = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
        for rcpt in (
            "u@example.net",
            "u@elsewhere.example",
            "u%elsewhere.example@mx.example.org",
            "elsewhere.example!u@mx.example.org",
            '"u@elsewhere.example"@mx.example.org',
            "@mx.example.org:u@elsewhere.example",
            "u@elsewhere.example@mx.example.org",
        ):
            self.assertEqual(s.cmd(f"RCPT TO:<{rcpt}>"), [refused], rcpt)

    def test_badmailfrom_reported_at_rcpt(self) -> None:
        s = self.session()
        s.take()
        for sender in ("SPAM@bad.example", "x@worse.example"):
            self.assertEqual(s.cmd(f"MAIL FROM:<{sender}>"), ["250 ok"])
            self.assertEqual(
                s.cmd("RCPT TO:<u@mx.example.org>"),
                ["553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"],
            )
        self.assertEqual(s.cmd("MAIL FROM:<x@sub.worse.example>"), ["250 ok"])
        self.assertEqual(s.cmd("RCPT TO:<u@mx.example.org>"), ["250 ok"])

    def test_relayclient(self) -> None:
        sink = MemorySink()
        s = self.session(sink=sink, rules='192.0.2.:allow,RELAYCLIENT=".relay"\n:allow')
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<y@other.example>"), ["250 ok"])
        s.cmd("DATA")
        s.send(b"x\r\n.\r\n")
        self.assertEqual(sink.queued[0].recipients, ["y@other.example.relay"])

    def test_localiphost(self) -> None:
        sink = MemorySink()
        s = self.session(sink=sink)
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        self.assertEqual(s.cmd("RCPT TO:<box@[198.51.100.1]>"), ["250 ok"])
        self.assertEqual(
            s.cmd("RCPT TO:<box@[203.0.113.9]>"),
            ["553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"],
        )
        s.cmd("DATA")
        s.send(b"x\r\n.\r\n")
        self.assertEqual(sink.queued[0].recipients, ["box@mx.example.org"])

    def test_ten_thousand_recipients(self) -> None:
        s = self.session(rules=':allow,RELAYCLIENT=""', junk_command_limit=100_000)  # 9,000 over the limit are junk
        s.take()
        s.cmd("MAIL FROM:<a@x>")
        replies = s.send(b"RCPT TO:<u@mx.example.org>\r\n" * 10000)
        self.assertEqual(len(replies), 10000)
        self.assertEqual(replies[999], "250 ok")
        self.assertEqual(replies[1000], "452 too many recipients (#4.5.3)")
        self.assertEqual(len(s.proto.recipients), 1000)


class Access(Base):
    controls = {"concurrencyincoming": "3", "concurrencyperip": "2"}

    def test_deny_closes_without_greeting(self) -> None:
        s = self.session(rules="192.0.2.7:deny\n:allow")
        self.assertEqual(s.take(), [])
        self.assertTrue(s.transport.disconnecting)
        self.assertEqual(s.context.limiter.total, 0)

    def test_limits(self) -> None:
        first = self.session()
        ctx = first.context
        second = self.session(context=ctx)
        third = self.session(context=ctx)
        self.assertEqual(third.take(), ["421 too many connections from your address, try again later (#4.3.2)"])
        other = self.session(context=ctx, peer="192.0.2.99")
        self.assertEqual(other.take(), ["220 mx.example.org ESMTP"])
        fifth = self.session(context=ctx, peer="192.0.2.100")
        self.assertEqual(fifth.take(), ["421 too many connections, try again later (#4.3.2)"])
        second.close()
        again = self.session(context=ctx)
        self.assertEqual(again.take(), ["220 mx.example.org ESMTP"])
        self.assertEqual(ctx.limiter.total, 3)

    def test_quit_frees_the_slot_before_the_socket_is_gone(self) -> None:
        """
        A session that said QUIT is over: its slot is free once the 221 is
        written, not when the closing socket is finally gone, so a client that
        reconnects at once (smtp-source, a busy relay) is not refused by its
        own finished session.
        """
        first = self.session()
        ctx = first.context
        self.session(context=ctx)
        self.assertEqual(ctx.limiter.total, 2)
        first.take()
        self.assertEqual(first.cmd("QUIT")[0][:4], "221 ")
        self.assertEqual(ctx.limiter.total, 1)
        again = self.session(context=ctx)
        self.assertEqual(again.take(), ["220 mx.example.org ESMTP"])
        first.close()  # the socket's end releases nothing twice
        self.assertEqual(ctx.limiter.total, 2)


class Submission(Base):
    def test_mail_needs_auth(self) -> None:
        s = self.session(settings=ListenerSettings(submission=True))
        s.take()
        self.assertEqual(s.cmd("MAIL FROM:<a@x>"), ["530 authentication required (#5.7.0)"])
