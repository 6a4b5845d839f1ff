"""Tests for pymta.dsn.bounceformat: control/bounceformat's values and errors."""

from twisted.trial import unittest

from pymta.control import ControlError
from pymta.dsn.bounceformat import parse_bounceformat


class BounceFormatTests(unittest.SynchronousTestCase):
    def test_values(self) -> None:
        self.assertEqual(parse_bounceformat(None), "qsbmf")
        self.assertEqual(parse_bounceformat([]), "qsbmf")
        self.assertEqual(parse_bounceformat(["DSN"]), "dsn")
        self.assertEqual(parse_bounceformat(["qsbmf"]), "qsbmf")

    def test_errors(self) -> None:
        with self.assertRaises(ControlError) as caught:
            parse_bounceformat(["mime"])
        self.assertIn("unknown format 'mime' (expected qsbmf or dsn)", str(caught.exception))
        self.assertRaises(ControlError, parse_bounceformat, ["dsn", "qsbmf"])
