"""Tests for pymta.extracontrols: one parser per extra control file, each naming file and line."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.showctl import EXTRA_FILES
from pymta.control import ControlError, load_controls
from pymta.extracontrols import PARSERS, check_extra_controls

#: a malformed line for every file of PARSERS (second line of the file)
BAD_SECOND_LINE = {
    "concurrencyperip": "5\n6\n",
    "rbls": "zen.example\nzen.example:perm\n",
    "rcptcheck": "\n0\n",
    "tlsdestinations": "bank.example:\nother.example\n",
    "queuesync": "fsync\nsyncfs\n",
    "smarthostauth": "relay.example alice secret\nrelay.example bob\n",
    "senderauth": "check\nreject-everything\n",
    "resolvers": "127.0.0.1\nns.example.net\n",
    "qmtproutes": "far.example:relay.example\nbad.example:relay.example smtps\n",
    "dkimkeys": "example.com:s1:dkim/s1.key\nexample.com:s1\n",
    "mtasts": "off\nstrict\n",
    "bounceformat": "dsn\nqsbmf\n",
    "trustedproxies": "10.0.0.0/8\n10.1.2.3/16\n",
    "lmtproutes": "mail.example:unix:/run/dovecot/lmtp\nbad.example:\n",
    "milters": "rspamd inet:127.0.0.1:11332\nclam unix:/run/clamav/milter.sock default=drop\n",
}


class ExtraControlsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "control"))

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.root, "control", name), "w") as f:
            f.write(text)

    def test_every_extra_file_with_a_syntax_has_a_parser(self) -> None:
        self.assertEqual(set(PARSERS), set(EXTRA_FILES) - {"servercert.pem", "morercpthosts.cdb"})
        self.assertEqual(set(BAD_SECOND_LINE), set(PARSERS))

    def test_absent_and_good_files(self) -> None:
        check_extra_controls(load_controls(self.root))
        for name, text in (("concurrencyperip", "5\n"), ("rbls", "zen.example\n"), ("rcptcheck", ""),
                           ("tlsdestinations", "bank.example:\n"), ("queuesync", "fsync\n")):
            self.write(name, text)
        controls = load_controls(self.root)
        check_extra_controls(controls)
        self.assertEqual(PARSERS["concurrencyperip"](controls), 5)
        self.assertIs(PARSERS["rcptcheck"](controls), True)

    def test_each_parser_names_file_and_line(self) -> None:
        for name, text in BAD_SECOND_LINE.items():
            self.write(name, text)
            path = os.path.join(self.root, "control", name)
            for check in (PARSERS[name], check_extra_controls):
                error = self.assertRaises(ControlError, check, load_controls(self.root))
                self.assertEqual((error.path, error.lineno), (path, 2), name)
                self.assertTrue(str(error).startswith(f"{path}:2: "), str(error))
            os.unlink(path)
