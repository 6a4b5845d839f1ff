"""pymta dns: options, the records of a real root, and `dns check` against a real authoritative server (NSD)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import dns as dns_command
from pymta.cli.dns import parse_nameserver
from tests.authdns import start_nsd
from tests.configcheck.helpers import init_root, write

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOA = "@ 3600 IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ 3600 IN NS ns.{origin}.\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = dns_command.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def mail_root(test: SynchronousTestCase) -> str:
    """A root for mx.example.test receiving for example.test too."""
    root = init_root(test)
    for name in ("locals", "rcpthosts"):
        with open(os.path.join(root, "control", name), "a", encoding="ascii") as f:
            f.write("example.test\n")
    return root


def zone_lines(records: str) -> str:
    """The zone lines of `pymta dns records` (comments left out)."""
    return "".join(line + "\n" for line in records.splitlines() if line and not line.startswith(";"))


def ptr_lines(records: str) -> str:
    return "".join(line[2:] + "\n" for line in records.splitlines() if " IN PTR " in line)


class NameserverOptionTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(parse_nameserver("127.0.0.1"), ("127.0.0.1", 53))
        self.assertEqual(parse_nameserver("127.0.0.1:5353"), ("127.0.0.1", 5353))
        self.assertEqual(parse_nameserver("[::1]:5353"), ("::1", 5353))
        self.assertEqual(parse_nameserver("::1"), ("::1", 53))

    def test_bad(self) -> None:
        for text in ("ns.example", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "[::1]x", "1.2.3.4:x"):
            self.assertRaises(ValueError, parse_nameserver, text)


class RecordsCommandTests(SynchronousTestCase):
    def test_records_of_a_root(self) -> None:
        code, out, err = run("records", "--root", mail_root(self), "--ipv4", "192.0.2.25", "--ipv6", "2001:db8::25")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("mx.example.test. 3600 IN A 192.0.2.25\n", out)
        self.assertIn("mx.example.test. 3600 IN AAAA 2001:db8::25\n", out)
        self.assertIn("example.test. 3600 IN MX 10 mx.example.test.\n", out)
        self.assertIn("; 25.2.0.192.in-addr.arpa. 3600 IN PTR mx.example.test.\n", out)
        self.assertIn("_dmarc.example.test. 3600 IN TXT", out)
        self.assertNotIn("\nmx.example.test. 3600 IN MX", out)

    def test_mta_sts_policy(self) -> None:
        code, out, _ = run("mta-sts", "--root", mail_root(self), "--mta-sts-mode", "enforce")
        self.assertEqual((code, out), (0, "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 604800\n"))

    def test_usage_errors(self) -> None:
        root = mail_root(self)
        for argv in (["bogus"], ["records", "--ipv4", "2001:db8::1"], ["records", "--ipv6", "x"],
                     ["check", "--nameserver", "ns.example"], ["check", "--dmarc-policy", "strict"]):
            code, out, err = run(*argv, "--root", root)
            self.assertEqual(code, dns_command.EXIT_USAGE, argv)
            self.assertTrue(err, argv)

    def test_root_without_me(self) -> None:
        root = mail_root(self)
        os.unlink(os.path.join(root, "control", "me"))
        code, _, err = run("records", "--root", root, "--ipv4", "192.0.2.25")
        self.assertEqual(code, dns_command.EXIT_TEMPORARY)
        self.assertEqual(err, f"pymta dns: {root}/control/me: missing: the MX host's name comes from it\n")

    def test_broken_control_file(self) -> None:
        root = mail_root(self)
        write(root, "control/rcpthosts", " example.test\n")
        code, _, err = run("records", "--root", root, "--ipv4", "192.0.2.25")
        self.assertEqual(code, dns_command.EXIT_TEMPORARY)
        self.assertTrue(err.startswith(f"pymta dns: {root}/control/rcpthosts:1:"), err)
        self.assertEqual(err.count("\n"), 1)

    def test_real_command(self) -> None:
        done = subprocess.run([sys.executable, "-m", "pymta.cli.main", "dns", "records", "--root", mail_root(self),
                               "--ipv4", "192.0.2.25"], capture_output=True, text=True, timeout=60, cwd=PROJECT)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("example.test. 3600 IN MX 10 mx.example.test.", done.stdout)


class CheckAgainstNsdTests(SynchronousTestCase):
    """`pymta dns check` asking NSD, which serves zones made from `pymta dns records`."""

    def serve(self, zone: str, reverse: str = "") -> str:
        """Serve example.test with C{zone} (and 2.0.192.in-addr.arpa with C{reverse}); the --nameserver value."""
        zones = {"example.test": "$ORIGIN example.test.\n" + SOA.format(origin="example.test")
                 + "ns 3600 IN A 127.0.0.1\n" + zone}
        if reverse:
            zones["2.0.192.in-addr.arpa"] = ("$ORIGIN 2.0.192.in-addr.arpa.\n" + SOA.format(origin="example.test")
                                             + reverse)
        port = start_nsd(self, zones)
        if port is None:
            self.skipTest("NSD (Debian package nsd) is not installed and cannot be installed here")
        return f"127.0.0.1:{port}"

    def records(self, root: str) -> str:
        code, out, err = run("records", "--root", root, "--ipv4", "192.0.2.25")
        self.assertEqual((code, err), (0, ""))
        return out

    def test_all_records_right(self) -> None:
        root = mail_root(self)
        records = self.records(root)
        nameserver = self.serve(zone_lines(records), ptr_lines(records))
        code, out, err = run("check", "--root", root, "--nameserver", nameserver)
        self.assertEqual((code, err), (0, ""), out)
        lines = out.splitlines()
        self.assertEqual(len(lines), len(zone_lines(records).splitlines()) + 1)
        self.assertTrue(all(line.startswith("ok        ") for line in lines), out)
        self.assertIn("ok        example.test MX 10 mx.example.test.", lines)
        self.assertIn("ok        25.2.0.192.in-addr.arpa PTR mx.example.test.", lines)
        # the addresses found in DNS for control/me, when none are given
        self.assertEqual(run("records", "--root", root, "--nameserver", nameserver), (0, records, ""))
        self.assertEqual(run("check", "--root", root, "--nameserver", nameserver)[0], 0)

    def test_missing_mx_and_wrong_spf(self) -> None:
        root = mail_root(self)
        records = self.records(root)
        zone = zone_lines(records).replace("example.test. 3600 IN MX 10 mx.example.test.\n", "")
        zone = zone.replace('example.test. 3600 IN TXT "v=spf1 mx -all"', 'example.test. 3600 IN TXT "v=spf1 a mx ~all"')
        self.assertNotIn(" MX ", zone)
        nameserver = self.serve(zone, "; no PTR\n")
        code, out, err = run("check", "--root", root, "--nameserver", nameserver)
        self.assertEqual((code, err), (dns_command.EXIT_MISMATCH, ""))
        lines = out.splitlines()
        self.assertIn("missing   example.test MX 10 mx.example.test.", lines)
        self.assertIn('different example.test TXT "v=spf1 mx -all" (found: "v=spf1 a mx ~all")', lines)
        self.assertIn("missing   25.2.0.192.in-addr.arpa PTR mx.example.test. (ask the address's owner)", lines)
        self.assertIn("ok        _dmarc.example.test TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.test\"",
                      lines)

    def test_later_stage_reported_until_published(self) -> None:
        root = mail_root(self)
        records = self.records(root)
        nameserver = self.serve(zone_lines(records), ptr_lines(records))
        code, out, _ = run("check", "--root", root, "--nameserver", nameserver, "--dmarc-policy", "quarantine")
        self.assertEqual(code, dns_command.EXIT_MISMATCH)
        self.assertIn("different _dmarc.example.test TXT", out)
        self.assertIn("(found: \"v=DMARC1; p=none;", out)

    def test_mx_host_an_alias(self) -> None:
        root = mail_root(self)
        records = self.records(root)
        zone = zone_lines(records).replace("mx.example.test. 3600 IN A 192.0.2.25\n",
                                           "mx.example.test. 3600 IN CNAME host.example.test.\n"
                                           "host.example.test. 3600 IN A 192.0.2.25\n")
        zone = zone.replace('mx.example.test. 3600 IN TXT "v=spf1 a -all"\n', "")
        nameserver = self.serve(zone, ptr_lines(records))
        code, out, _ = run("check", "--root", root, "--nameserver", nameserver, "--ipv4", "192.0.2.25")
        self.assertEqual(code, dns_command.EXIT_MISMATCH, out)
        self.assertEqual(out.splitlines()[0],
                         "different mx.example.test A 192.0.2.25 (found: an alias (CNAME) of host.example.test.)")
        self.assertIn("ok        example.test MX 10 mx.example.test.", out.splitlines())

    def test_no_answer(self) -> None:
        root = mail_root(self)
        records = self.records(root)
        nameserver = self.serve(zone_lines(records))  # no reverse zone: NSD refuses those questions
        code, out, _ = run("check", "--root", root, "--nameserver", nameserver)
        self.assertEqual(code, dns_command.EXIT_TEMPORARY, out)
        self.assertIn("no answer 25.2.0.192.in-addr.arpa PTR mx.example.test.", out)


class RecordsWithoutDnsTests(SynchronousTestCase):
    def test_unanswered_address_lookup(self) -> None:
        """No server on the port: `records` still prints the rest, `check` says DNS did not answer."""
        root = mail_root(self)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            nameserver = f"127.0.0.1:{silent.getsockname()[1]}"
            self.patch(dns_command, "LOOKUP_TIMEOUT", 0.3)
            code, out, err = run("records", "--root", root, "--nameserver", nameserver)
            self.assertEqual(code, 0)
            self.assertTrue(err.startswith("pymta dns: warning: no addresses of mx.example.test from DNS ("), err)
            self.assertIn("example.test. 3600 IN MX 10 mx.example.test.\n", out)
            self.assertIn("; no address of mx.example.test known", out)
            code, out, err = run("check", "--root", root, "--nameserver", nameserver)
            self.assertEqual(code, dns_command.EXIT_TEMPORARY)
            self.assertTrue(err.startswith("pymta dns: no answer from DNS: mx.example.test A: "), err)

    def test_no_resolver_configured(self) -> None:
        """Without /etc/resolv.conf (here: an empty one), a clear line, not a traceback."""
        empty = self.mktemp()
        with open(empty, "w", encoding="ascii"):
            pass
        real = dns_command.dns.resolver.Resolver

        def unconfigured(*args: object, **kwargs: object) -> object:
            return real(filename=empty) if not args and not kwargs else real(*args, **kwargs)  # type: ignore[arg-type]

        self.patch(dns_command.dns.resolver, "Resolver", unconfigured)
        code, out, err = run("check", "--root", mail_root(self), "--ipv4", "192.0.2.25")
        self.assertEqual(code, dns_command.EXIT_TEMPORARY)
        self.assertIn("no answer", out)
        self.assertIn("no resolver configured", out)
