"""The Authentication-Results field we write parses back to exactly our results, whatever the inputs."""

from __future__ import annotations

import re

import authres
from twisted.trial.unittest import SynchronousTestCase

from pymta.senderauth.dkimcheck import check_dkim
from pymta.senderauth.header import authentication_results, value_text
from pymta.senderauth.spfcheck import check_spf
from pymta.senderauth.verdict import Verdict
from tests.senderauth.fakedns import FakeLookups, txt

#: (text from outside, the value a reader gets back: control characters become spaces)
HOSTILE = [
    ("x@y; dkim=pass header.d=paypal.com", "x@y; dkim=pass header.d=paypal.com"),
    ("a\rAuthentication-Results: mx.example.org; dkim=pass", "a Authentication-Results: mx.example.org; dkim=pass"),
    ('q"uote\\d (c) ; dkim=pass', 'q"uote\\d (c) ; dkim=pass'),
    ("line\r\nbreak\x00nul\x7fdel\n", "line break nul del"),
    ("", ""),
]


def parsed(field: bytes) -> list[authres.AuthenticationResult]:
    text = field.decode()
    assert "\r" not in text and text.count("\n") == text.count("\n\t") + 1, text
    return list(authres.AuthenticationResultsHeader.parse(text.replace("\n\t", " ").strip()).results)


class ParsesBack(SynchronousTestCase):
    def test_hostile_values_stay_inside_their_result(self) -> None:
        for text, meant in HOSTILE:
            verdicts = [Verdict("spf", "none", text, (("smtp.helo", text),), comment=text),
                        Verdict("dkim", "fail", text, (("header.i", text), ("header.d", "example.com")))]
            results = parsed(authentication_results("mx.example.org", verdicts))
            self.assertEqual([(r.method, r.result) for r in results], [("spf", "none"), ("dkim", "fail")], text)
            self.assertEqual([(p.type, p.name, re.sub(r"\\(.)", r"\1", p.value)) for p in results[1].properties],
                             [("header", "d", "example.com"), ("header", "i", meant)], text)

    def test_tokens_are_written_bare_and_the_rest_quoted(self) -> None:
        self.assertEqual(value_text("example.com"), "example.com")
        self.assertEqual(value_text("x@y; z"), '"x@y; z"')
        self.assertEqual(value_text('a"b\\c'), '"a\\"b\\\\c"')
        self.assertEqual(value_text("a\r\nb"), '"a b"')

    def test_helo_that_is_not_a_domain_is_left_out(self) -> None:
        spf = check_spf(FakeLookups({}), "192.0.2.7", "a@example.com", "x@y; dkim=pass header.d=paypal.com", "mx")
        self.assertEqual(spf.helo.properties, ())
        results = parsed(authentication_results("mx.example.org", spf.all()))
        self.assertEqual([(r.method, r.result) for r in results], [("spf", "none"), ("spf", "none")])

    def test_spf_explanation_from_dns_is_not_copied(self) -> None:
        lookups = FakeLookups({
            ("evil.test", "TXT"): [txt("v=spf1 -all exp=why.evil.test")],
            ("why.evil.test", "TXT"): [txt("see x@y; dkim=pass header.d=paypal.com")],
        })
        spf = check_spf(lookups, "192.0.2.7", "a@evil.test", "helo.test", "mx.example.org")
        field = authentication_results("mx.example.org", spf.all())
        self.assertNotIn(b"paypal", field)
        self.assertEqual([r.result for r in parsed(field)], ["none", "fail"])

    def test_dkim_error_text_stays_in_its_reason(self) -> None:
        sig = (b"DKIM-Signature: v=1; a=rsa-sha256; d=evil.test; s=s; h=from; bh=AAAA; b=AAAA;"
               b" i=x@y;dkim=pass header.d=paypal.com\n")
        field = authentication_results("mx.example.org", check_dkim(FakeLookups({}), sig + b"From: a@evil.test\n\nhi\n"))
        self.assertEqual([(r.method, r.result) for r in parsed(field)], [("dkim", "permerror")])
