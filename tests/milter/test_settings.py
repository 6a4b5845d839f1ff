"""control/milters: sockets in Postfix's and Sendmail's spellings, defaults, options, errors naming the line."""

from __future__ import annotations

from twisted.trial import unittest

from pymta.control import ControlError, Controls
from pymta.milter.api import Action
from pymta.milter.settings import DEFAULT_MACROS, MilterSpec, SettingError, milter_specs, parse_milter_line
from tests.controlfiles import controls_from


class LineTests(unittest.TestCase):
    def test_defaults(self) -> None:
        spec = parse_milter_line("rspamd inet:127.0.0.1:11332")
        self.assertEqual(spec, MilterSpec("rspamd", "inet", "127.0.0.1", 11332))
        self.assertEqual((spec.default, spec.connect_timeout, spec.command_timeout, spec.content_timeout),
                         (Action.TEMPFAIL, 30, 30, 300))
        self.assertEqual(spec.macros, DEFAULT_MACROS)
        self.assertEqual(spec.socket, "inet:127.0.0.1:11332")

    def test_sockets(self) -> None:
        for text, where in (("unix:/run/milter.sock", ("unix", "/run/milter.sock", 0)),
                            ("local:/run/m", ("unix", "/run/m", 0)),
                            ("inet:11332@127.0.0.1", ("inet", "127.0.0.1", 11332)),
                            ("inet:localhost:8891", ("inet", "127.0.0.1", 8891)),
                            ("inet:[::1]:8891", ("inet6", "::1", 8891)),
                            ("inet6:8891@::1", ("inet6", "::1", 8891)),
                            ("inet6:[2001:db8::1]:25", ("inet6", "2001:db8::1", 25))):
            spec = parse_milter_line(f"f {text}")
            self.assertEqual((spec.family, spec.address, spec.port), where)
        self.assertEqual(parse_milter_line("f inet6:[::1]:25").socket, "inet6:[::1]:25")

    def test_options(self) -> None:
        spec = parse_milter_line("clam unix:/s default=accept connect=5 command=7 content=60 macros.mail=i,mail_addr")
        self.assertEqual((spec.default, spec.connect_timeout, spec.command_timeout, spec.content_timeout),
                         (Action.ACCEPT, 5, 7, 60))
        self.assertEqual(spec.macros["mail"], ("i", "{mail_addr}"))
        self.assertEqual(spec.macros["rcpt"], DEFAULT_MACROS["rcpt"])
        self.assertEqual(parse_milter_line("x unix:/s default=reject").default, Action.REJECT)

    def test_refused(self) -> None:
        for line, reason in (("rspamd", "a name and a socket"),
                             ("bad/name unix:/s", "bad filter name"),
                             ("f tcp:1.2.3.4:5", "unknown socket kind"),
                             ("f unix:relative", "absolute path"),
                             ("f unix:/" + "x" * 107, "longer than 107"),
                             ("f inet:mail.example:25", "IP address"),
                             ("f inet:127.0.0.1:0", "bad port"),
                             ("f inet:127.0.0.1", "no host"),
                             ("f inet6:25@127.0.0.1", "IPv6"),
                             ("f 127.0.0.1:25", "unknown socket kind"), ("f /run/m.sock", "bad socket"),
                             ("f unix:/s default=discard", "bad default"),
                             ("f unix:/s connect=0", "bad connect timeout"),
                             ("f unix:/s content=x", "bad content timeout"),
                             ("f unix:/s command=1 command=2", "twice"),
                             ("f unix:/s macros.mail=i,a$b", "bad macro"),
                             ("f unix:/s macros.quit=i", "unknown option"),
                             ("f unix:/s fast", "bad option")):
            with self.assertRaises(SettingError) as caught:
                parse_milter_line(line)
            self.assertIn(reason, str(caught.exception), line)


class FileTests(unittest.TestCase):
    def controls(self, text: str | None) -> Controls:
        return controls_from(self, milters=text)

    def test_absent_and_empty(self) -> None:
        self.assertEqual(milter_specs(self.controls(None)), ())
        self.assertEqual(milter_specs(self.controls("# none yet\n\n")), ())

    def test_order_kept(self) -> None:
        specs = milter_specs(self.controls("# filters\nrspamd inet:127.0.0.1:11332\nclam unix:/run/clamav/m.sock\n"))
        self.assertEqual([s.name for s in specs], ["rspamd", "clam"])

    def test_error_names_file_and_line(self) -> None:
        controls = self.controls("# filters\nrspamd inet:127.0.0.1:11332\n\nrspamd unix:/x\n")
        with self.assertRaises(ControlError) as caught:
            milter_specs(controls)
        self.assertEqual(caught.exception.lineno, 4)
        self.assertTrue(str(caught.exception).startswith(controls.path("milters") + ":4: "))
        self.assertIn("used twice", str(caught.exception))
