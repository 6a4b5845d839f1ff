"""Tests for pymta.inject.message: qmail-inject's rewriting of one message."""

from __future__ import annotations

import calendar
import io
import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.control import load_controls
from pymta.inject.message import (
    DATA,
    RECIP_ARGS,
    RECIP_BOTH,
    RECIP_HEADER,
    InjectError,
    InjectOptions,
    InjectSettings,
    message_id,
    prepare,
)

NOW = float(calendar.timegm((2026, 11, 29, 6, 9, 9)))
PID = 4242
DATE = "Date: 29 Nov 2026 06:09:09 -0000\n"
MSGID = "Message-ID: <20261129060909.4242.qmail@id.example.com>\n"


def make_root(testcase: SynchronousTestCase) -> str:
    root = testcase.mktemp()
    os.makedirs(os.path.join(root, "control"))
    for name, value in (("me", "me.example.com"), ("defaulthost", "mail.example.com"),
                        ("defaultdomain", "example.com"), ("plusdomain", "plus.example.com"),
                        ("idhost", "id.example.com")):
        with open(os.path.join(root, "control", name), "w") as f:
            f.write(value + "\n")
    return root


class MessageTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.controls = load_controls(make_root(self))
        self.env: dict[str, str] = {"USER": "joe"}

    def prepare(self, data: bytes, **options) -> tuple[object, str]:  # type: ignore[no-untyped-def]
        settings = InjectSettings.from_environment(self.env, self.controls)
        prepared = prepare(io.BytesIO(data), InjectOptions(**options), settings, now=NOW, pid=PID)
        text = b"".join(prepared.chunks()).decode("utf-8", "surrogateescape")
        return prepared, text


class AddedFieldsTests(MessageTestCase):
    def test_everything_added_to_an_empty_message(self) -> None:
        prepared, text = self.prepare(b"", arguments=["bob"])
        self.assertEqual(text, DATE + MSGID + "From: joe@mail.example.com\nCc: recipient list not shown: ;\n")
        self.assertEqual(prepared.sender, "joe@mail.example.com")
        self.assertEqual(prepared.recipients, ["bob@mail.example.com"])

    def test_order_added_then_original(self) -> None:
        _, text = self.prepare(b"Subject: s\nTo: a@b.c\n\nbody\n")
        self.assertEqual(text, DATE + MSGID + "From: joe@mail.example.com\nSubject: s\nTo: a@b.c\n\nbody\n")

    def test_existing_fields_not_added_again(self) -> None:
        _, text = self.prepare(b"Date: yesterday\nMessage-ID: <x@y>\nFrom: me@x.y\nCc: a@b.c\n\n")
        self.assertEqual(text, "Date: yesterday\nMessage-ID: <x@y>\nFrom: me@x.y\nCc: a@b.c\n\n")

    def test_message_id_format(self) -> None:
        self.assertEqual(message_id("h.example", NOW, 7), "<20261129060909.7.qmail@h.example>")
        self.env["QMAILIDHOST"] = "other.example"
        _, text = self.prepare(b"To: a@b.c\n\n")
        self.assertIn("Message-ID: <20261129060909.4242.qmail@other.example>\n", text)

    def test_from_with_name_and_host(self) -> None:
        self.env.update(QMAILNAME='Joe "J" Public', QMAILHOST="host.example")
        _, text = self.prepare(b"To: a@b.c\n\n")
        self.assertIn('From: "Joe \\"J\\" Public" <joe@host.example>\n', text)

    def test_from_name_precedence_and_comment_style(self) -> None:
        self.env.update(NAME="Third", MAILNAME="Second")
        _, text = self.prepare(b"To: a@b.c\n\n")
        self.assertIn('From: "Second" <joe@mail.example.com>\n', text)
        self.env["QMAILINJECT"] = "c"
        _, text = self.prepare(b"To: a@b.c\n\n")
        self.assertIn("From: joe@mail.example.com (Second)\n", text)

    def test_user_precedence(self) -> None:
        self.env = {"LOGNAME": "l"}
        self.assertIn("From: l@", self.prepare(b"")[1])
        self.env["USER"] = "u"
        self.assertIn("From: u@", self.prepare(b"")[1])
        self.env["MAILUSER"] = "m"
        self.assertIn("From: m@", self.prepare(b"")[1])
        self.env["QMAILUSER"] = "q"
        self.assertIn("From: q@", self.prepare(b"")[1])
        self.env = {}
        self.assertIn("From: anonymous@mail.example.com\n", self.prepare(b"")[1])

    def test_user_needing_quotes(self) -> None:
        self.env["USER"] = "joe smith"
        prepared, text = self.prepare(b"")
        self.assertIn('From: "joe smith"@mail.example.com\n', text)
        self.assertEqual(prepared.sender, "joe smith@mail.example.com")

    def test_flags_f_and_i_drop_incoming_from_and_message_id(self) -> None:
        self.env["QMAILINJECT"] = "fi"
        _, text = self.prepare(b"From: forged@x.y\nMessage-ID: <old@x>\nTo: a@b.c\n\n")
        self.assertEqual(text, DATE + MSGID + "From: joe@mail.example.com\nTo: a@b.c\n\n")

    def test_mail_followup_to(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# lists\nList@Lists.Example\n")
        self.env["QMAILMFTFILE"] = path
        _, text = self.prepare(b"To: a@b.c, list@lists.example\nCc: c@d.e\n\n")
        self.assertIn("Mail-Followup-To: a@b.c,\n  list@lists.example,\n  c@d.e\nTo:", text)
        _, text = self.prepare(b"To: a@b.c\n\n")
        self.assertNotIn("Mail-Followup-To", text)
        _, text = self.prepare(b"To: list@lists.example\nMail-Followup-To: x@y.z\n\n")
        self.assertEqual(text.count("Mail-Followup-To"), 1)


class ControlOverrideTests(MessageTestCase):
    def test_environment_overrides_the_control_files(self) -> None:
        self.env.update(QMAILDEFAULTHOST="dh.example", QMAILDEFAULTDOMAIN="dd.example",
                        QMAILPLUSDOMAIN="pd.example")
        prepared, text = self.prepare(b"To: a, b@host, c@host+\n\n")
        self.assertEqual(prepared.recipients, ["a@dh.example", "b@host.dd.example", "c@host.pd.example"])
        self.assertIn("To: a@dh.example, b@host.dd.example, c@host.pd.example\n", text)
        self.assertEqual(prepared.sender, "joe@dh.example")

    def test_control_defaults_fall_back_to_me(self) -> None:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "control"))
        with open(os.path.join(root, "control", "me"), "w") as f:
            f.write("only-me\n")
        self.controls = load_controls(root)
        prepared, text = self.prepare(b"To: a, b@host\n\n")
        self.assertEqual(prepared.recipients, ["a@only-me.only-me", "b@host.only-me"])
        self.assertIn("Message-ID: <20261129060909.4242.qmail@only-me>\n", text)


class RemovedFieldsTests(MessageTestCase):
    def test_bcc_return_path_content_length_removed(self) -> None:
        prepared, text = self.prepare(
            b"To: a@b.c\nBcc: hidden@b.c\nReturn-Path: <rp@b.c>\nContent-Length: 99\nResent-Bcc: r@b.c\nSubject: s\n\nx\n"
        )
        for name in ("Bcc", "Return-Path", "Content-Length", "Resent-Bcc"):
            self.assertNotIn(name + ":", text)
        self.assertIn("Subject: s\n", text)
        self.assertEqual(prepared.sender, "rp@b.c")


class SenderTests(MessageTestCase):
    def test_dash_f_wins_over_return_path(self) -> None:
        prepared, _ = self.prepare(b"Return-Path: <rp@b.c>\n\n", sender="boss")
        self.assertEqual(prepared.sender, "boss@mail.example.com")

    def test_dash_f_empty_is_the_null_sender(self) -> None:
        prepared, text = self.prepare(b"\n", sender="", queue=False)
        self.assertEqual(prepared.sender, "")
        self.assertTrue(text.startswith("Return-Path: <>\n"))

    def test_return_path_header_is_rewritten(self) -> None:
        prepared, _ = self.prepare(b"Return-Path: rp\n\n")
        self.assertEqual(prepared.sender, "rp@mail.example.com")

    def test_flag_s_ignores_return_path(self) -> None:
        self.env["QMAILINJECT"] = "s"
        prepared, _ = self.prepare(b"Return-Path: <rp@b.c>\n\n")
        self.assertEqual(prepared.sender, "joe@mail.example.com")

    def test_sender_user_and_host_variables(self) -> None:
        self.env.update(QMAILSUSER="bounces", QMAILSHOST="b.example", QMAILHOST="h.example")
        prepared, text = self.prepare(b"\n")
        self.assertEqual(prepared.sender, "bounces@b.example")
        self.assertIn("From: joe@h.example\n", text)

    def test_sender_host_defaults_to_mailhost(self) -> None:
        self.env.update(QMAILHOST="h")
        prepared, _ = self.prepare(b"\n")
        self.assertEqual(prepared.sender, "joe@h.example.com")

    def test_verp_rm_reference_example(self) -> None:
        self.env.update(QMAILINJECT="rm", QMAILSUSER="bounces", QMAILSHOST="b.example")
        prepared, _ = self.prepare(b"\n")
        self.assertEqual(prepared.sender, f"bounces-{int(NOW)}.{PID}-@b.example-@[]")

    def test_verp_r_on_return_path_but_not_on_dash_f(self) -> None:
        self.env["QMAILINJECT"] = "r"
        self.assertEqual(self.prepare(b"Return-Path: <rp@b.c>\n\n")[0].sender, "rp@b.c-@[]")
        self.assertEqual(self.prepare(b"\n", sender="x@y.z")[0].sender, "x@y.z")
        self.assertEqual(self.prepare(b"\n")[0].sender, "joe-@mail.example.com-@[]")

    def test_return_path_line_quotes_the_sender(self) -> None:
        _, text = self.prepare(b"\n", sender="joe smith@x.y", queue=False)
        self.assertTrue(text.startswith('Return-Path: <"joe smith"@x.y>\n'))

    def test_unparsable_dash_f(self) -> None:
        e = self.assertRaises(InjectError, self.prepare, b"\n", sender="a@(b")
        self.assertEqual(e.kind, DATA)
        self.assertIn("unable to parse this line", e.text)


class RecipientTests(MessageTestCase):
    HEADER = b"To: t1, t2@x.y\nCc: c@x.y\nBcc: b@x.y\nApparently-To: ap@x.y\n\n"

    def test_default_arguments_when_given(self) -> None:
        prepared, _ = self.prepare(self.HEADER, arguments=["arg"])
        self.assertEqual(prepared.recipients, ["arg@mail.example.com"])

    def test_default_header_without_arguments(self) -> None:
        prepared, _ = self.prepare(self.HEADER)
        self.assertEqual(prepared.recipients,
                         ["t1@mail.example.com", "t2@x.y", "c@x.y", "b@x.y", "ap@x.y"])

    def test_a_h_and_big_h(self) -> None:
        self.assertEqual(self.prepare(self.HEADER, strategy=RECIP_ARGS)[0].recipients, [])
        self.assertEqual(len(self.prepare(self.HEADER, strategy=RECIP_HEADER, arguments=["z"])[0].recipients), 5)
        both = self.prepare(self.HEADER, strategy=RECIP_BOTH, arguments=["z"])[0].recipients
        self.assertEqual(both[0], "z@mail.example.com")
        self.assertEqual(len(both), 6)

    def test_duplicates_kept(self) -> None:
        prepared, _ = self.prepare(b"To: a@x.y, a@x.y\n\n", strategy=RECIP_BOTH, arguments=["a@x.y"])
        self.assertEqual(prepared.recipients, ["a@x.y"] * 3)

    def test_groups_and_display_names(self) -> None:
        prepared, text = self.prepare(b'To: team: Ann <ann>, bob;, "Carl C." <carl@x.y> (c)\n\n')
        self.assertEqual(prepared.recipients, ["ann@mail.example.com", "bob@mail.example.com", "carl@x.y"])
        self.assertIn('To: team: Ann <ann@mail.example.com>, bob@mail.example.com;,\n  "Carl C." <carl@x.y>(c)\n', text)

    def test_folding_of_rewritten_fields(self) -> None:
        _, text = self.prepare(b"To: joe, fred@host, eric@mammoth+, another@example.org\n\n")
        self.assertIn(
            "To: joe@mail.example.com, fred@host.example.com,\n"
            "  eric@mammoth.plus.example.com, another@example.org\n", text)

    def test_unparsable_recipient_field_copied_unchanged(self) -> None:
        prepared, text = self.prepare(b"To: <broken\nCc: ok@x.y\n\n")
        self.assertIn("To: <broken\n", text)
        self.assertEqual(prepared.recipients, ["ok@x.y"])

    def test_unparsable_sender_field_is_fatal(self) -> None:
        e = self.assertRaises(InjectError, self.prepare, b"From: <broken\n\n")
        self.assertEqual(e.kind, DATA)
        self.assertEqual(e.text, "unable to parse this line:\nFrom: <broken")

    def test_unparsable_argument(self) -> None:
        e = self.assertRaises(InjectError, self.prepare, b"\n", arguments=["a@(b"])
        self.assertEqual(e.text, "unable to parse address: a@(b")

    def test_null_address_in_header_is_not_a_recipient(self) -> None:
        prepared, _ = self.prepare(b"To: <>, a@x.y\n\n")
        self.assertEqual(prepared.recipients, ["a@x.y"])


class ResentTests(MessageTestCase):
    def test_resent_recipients_and_added_fields(self) -> None:
        prepared, text = self.prepare(
            b"From: orig@x.y\nTo: orig-to@x.y\nDate: old\nMessage-ID: <old@x>\nResent-To: new@x.y\nResent-Bcc: secret@x.y\n\nbody\n"
        )
        self.assertEqual(prepared.recipients, ["new@x.y", "secret@x.y"])
        self.assertEqual(
            text,
            "Resent-" + DATE + "Resent-" + MSGID + "Resent-From: joe@mail.example.com\n"
            "From: orig@x.y\nTo: orig-to@x.y\nDate: old\nMessage-ID: <old@x>\nResent-To: new@x.y\n\nbody\n",
        )

    def test_resent_without_to_or_cc_gets_the_notice(self) -> None:
        prepared, text = self.prepare(b"Resent-From: r@x.y\nResent-Bcc: secret@x.y\nTo: x@y.z\n\n")
        self.assertIn("Resent-Cc: recipient list not shown: ;\n", text)
        self.assertNotIn("\nCc: recipient list", text)
        self.assertNotIn("Resent-From: joe", text)
        self.assertEqual(prepared.recipients, ["secret@x.y"])


class BodyTests(MessageTestCase):
    def test_crlf_message(self) -> None:
        _, text = self.prepare(b"To: a@b.c\r\nSubject: s\r\n\r\nline1\r\nline2\r\n")
        self.assertTrue(text.endswith("To: a@b.c\nSubject: s\n\nline1\nline2\n"))
        self.assertNotIn("\r", text)

    def test_eight_bit_and_nul_data_pass(self) -> None:
        settings = InjectSettings.from_environment(self.env, self.controls)
        prepared = prepare(io.BytesIO(b"Subject: \xe9\n\n\x00\xff\xfe\n"), InjectOptions(), settings, now=NOW, pid=PID)
        data = b"".join(prepared.chunks())
        self.assertTrue(data.endswith(b"Subject: \xe9\n\n\x00\xff\xfe\n"))

    def test_body_without_header(self) -> None:
        _, text = self.prepare(b"just text\nmore\n", arguments=["a"])
        self.assertTrue(text.endswith("Cc: recipient list not shown: ;\n\njust text\nmore\n"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_header_line = st.one_of(
    st.sampled_from([b"To: ", b"Cc: ", b"From: ", b"Bcc: ", b"Return-Path: ", b"Resent-To: ", b"Subject: ",
                     b"Reply-To: ", b" ", b"\t", b"From ", b"X-Y: "]),
    st.just(b""),
).flatmap(lambda name: st.binary(max_size=40).map(lambda value: name + value.replace(b"\n", b" ") + b"\n"))


class MessageProperties(MessageTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_header_line, max_size=8), st.binary(max_size=200))
    def test_any_input_is_injected_or_refused_cleanly(self, lines: list[bytes], body: bytes) -> None:
        data = b"".join(lines) + b"\n" + body
        try:
            prepared, _ = self.prepare(data)
        except InjectError as e:
            self.assertEqual(e.kind, DATA)
            self.assertTrue(e.text.startswith("unable to parse this line:\n"))
            return
        settings_ = InjectSettings.from_environment(self.env, self.controls)
        prepared = prepare(io.BytesIO(data), InjectOptions(), settings_, now=NOW, pid=PID)
        output = b"".join(prepared.chunks())
        self.assertNotIn(b"\r\n", output)
        self.assertIn(b"\n", output)
        if not any(line == b"\n" for line in lines):  # the first empty line separates the body
            expected_body = (b"\n" + body).replace(b"\r\n", b"\n")
            if expected_body.endswith(b"\r"):
                expected_body = expected_body[:-1] + b"\n"
            elif not expected_body.endswith(b"\n"):
                expected_body += b"\n"
            self.assertTrue(output.endswith(expected_body), (data, output))
        for recipient in prepared.recipients:
            self.assertIn("@", recipient)
