"""
DKIM signing end to end, verified by an independent implementation.

A real C{twistd pymta} with keys made by C{pymta dkim keygen} (rsa and
ed25519) signs a message from a relay client (RELAYCLIENT in tcp.smtp), a
message from a logged-in submission user and a message injected with
C{pymta inject}; remote delivery (smtproutes) carries them to an SMTP
sink run by the test.  What arrived is checked against the TXT records
keygen printed, served by a real NSD:

- Mail::DKIM (Perl, Debian C{libmail-dkim-perl}: the verifier of
  SpamAssassin and amavis; C{maildkim_verify.pl} points its resolver at
  NSD) verifies the rsa-sha256 signature.  Debian 12's version does not
  know ed25519-sha256 (it says so, and the test accepts that answer);
- dkimpy, asking NSD through dnspython, verifies both signatures;
- a modified body fails every verifier.

OpenDKIM's C{opendkim-testmsg} was the first choice; Debian 12's
(2.11.0~beta2) answers C{dkim_chunk(): Syntax error} to every message,
even one it is asked to sign, so it cannot judge anything here.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile

import dkim
import dns.message
import dns.query
import dns.rdatatype
from twisted.trial import unittest

from pymta.dkim.signer import wire_form
from tests.authdns import start_nsd
from tests.packages import ensure_perl_module
from tests.test_end_to_end import SRC, SinkHandler, free_port, start_twistd, wait_for

UNSUPPORTED = "invalid (unsupported algorithm ed25519-sha256)"
VERIFY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maildkim_verify.pl")
ZONE = """$ORIGIN example.com.
@ 3600 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300
@ 3600 IN NS ns.example.com.
ns 3600 IN A 127.0.0.1
{records}
"""


def message(subject: str) -> bytes:
    return (f"From: Alice <alice@example.com>\r\nTo: bob@remote.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.com>\r\n\r\nHello Bob,\r\n.a line with a dot\r\n\r\nAlice\r\n").encode()


def received(data: bytes) -> bytes:
    """A message as the sink got it (dot-stuffed, CRLF) as a file would hold it."""
    return re.sub(rb"(?m)^\.\.", b".", data)


def only_signature(data: bytes, algorithm: bytes) -> bytes:
    """C{data} (CRLF) with only its C{DKIM-Signature} of C{algorithm}."""
    head, _, body = data.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    kept = [f for f in fields if not f.lower().startswith(b"dkim-signature:") or b"a=" + algorithm + b";" in f]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


class LiveSigning(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="pymta-dk-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base
        self.root = os.path.join(base, "root")
        import socketserver
        import threading

        self.sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SinkHandler)
        self.sink.daemon_threads = True
        self.sink.messages = []  # type: ignore[attr-defined]
        threading.Thread(target=self.sink.serve_forever, daemon=True).start()
        self.addCleanup(self.sink.server_close)
        self.addCleanup(self.sink.shutdown)

    def pymta(self, *args: str, input: bytes | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], check=True, cwd=SRC, input=input,
                              stdout=subprocess.PIPE, env=dict(os.environ, PYMTA_ROOT=self.root))
        return done.stdout.decode()

    def start_dns(self, records: list[str]) -> tuple[str, int]:
        """NSD serving C{records} on 127.0.0.1: the address and port."""
        port = start_nsd(self, {"example.com": ZONE.format(records="\n".join(records))})
        if port is None:
            raise unittest.SkipTest("NSD cannot be installed here")
        return "127.0.0.1", port

    def test_signed_by_pymta_verified_by_mail_dkim(self) -> None:
        init = [self.root, "--me", "test.example", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        self.pymta("init", *init)
        records, lines = [], []
        for selector, kind in (("r2026", "rsa"), ("e2026", "ed25519")):
            out = self.pymta("dkim", "keygen", "example.com", selector, "--type", kind)
            records += [line for line in out.splitlines() if not line.startswith("#")]
            lines += [line[2:] for line in out.splitlines() if line.startswith("# example.com:")]
        self.assertEqual(len(records), 2)
        address, dns_port = self.start_dns(records)
        for name, text in (("control/dkimkeys", "\n".join(lines) + "\n"),
                           ("control/smtproutes", f"remote.example:127.0.0.1:{self.sink.server_address[1]}\n"),
                           ("etc/tcp.smtp", '127.0.0.1:allow,RELAYCLIENT=""\n')):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(text)

        smtp, submission = free_port(), free_port()
        log = os.path.join(self.root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", self.root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1",
                      "--submission", f"tcp:{submission}:interface=127.0.0.1"], log, [smtp, submission])
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("alice@example.com", ["bob@remote.example"], message("relayclient"))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", submission, timeout=30) as client:
            client.starttls(context=context)
            client.login("alice", "secret")
            client.sendmail("alice@example.com", ["bob@remote.example"], message("submission"))
        self.pymta("inject", "bob@remote.example", input=message("inject").replace(b"\r\n", b"\n"))
        # what |forward re-injects: its Delivered-To line and a stranger's message with its Received line
        forwarded = (b"Delivered-To: alice@example.com\nReceived: from evil.example (203.0.113.9)\n"
                     + message("forwarded").replace(b"\r\n", b"\n"))
        self.pymta("inject", "bob@remote.example", input=forwarded)

        wait_for(lambda: len(self.sink.messages) >= 4, 60, "four remote deliveries", log)
        arrived = {m["data"].split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode(): received(m["data"])
                   for m in self.sink.messages}
        self.assertEqual(sorted(arrived), ["forwarded", "inject", "relayclient", "submission"])
        self.assertNotIn(b"DKIM-Signature", arrived.pop("forwarded"))

        def lookup(name: bytes, timeout: int = 5) -> bytes | None:
            query = dns.message.make_query(name.decode(), "TXT")
            reply = dns.query.udp(query, address, port=dns_port, timeout=5)
            for rrset in reply.answer:
                if rrset.rdtype == dns.rdatatype.TXT:
                    return b"".join(rrset[0].strings)
            return None

        perl = shutil.which("perl")
        independent = perl is not None and ensure_perl_module("Mail::DKIM::Verifier", "libmail-dkim-perl")

        def maildkim(data: bytes) -> list[str]:
            assert perl is not None
            done = subprocess.run([perl, VERIFY, address, str(dns_port)], input=data, capture_output=True, timeout=60)
            self.assertEqual(done.returncode, 0, done.stderr)
            return sorted(done.stdout.decode().splitlines())

        for subject, data in arrived.items():
            head = data.split(b"\r\n\r\n", 1)[0]
            self.assertEqual(head.count(b"DKIM-Signature: "), 2, subject)
            if subject != "inject":  # above smtpd's Received line (the queue's own comes first)
                self.assertLess(head.index(b"DKIM-Signature: "), head.index(b"Received: from "), subject)
            modified = data.replace(b"Hello Bob,", b"Hello Bob!")
            for index in (0, 1):
                self.assertTrue(_dkimpy_passes(data, index, lookup), f"{subject}: dkimpy, signature {index}")
                self.assertFalse(_dkimpy_passes(modified, index, lookup), f"{subject}: dkimpy passes a modified body")
            if not independent:
                continue
            verdicts = dict(line.split(" ", 1) for line in maildkim(data))
            self.assertEqual(verdicts["rsa-sha256"], "pass", subject)
            # Mail::DKIM before 1.20230630 (Debian 12's) does not know ed25519-sha256: dkimpy checked that one
            self.assertIn(verdicts["ed25519-sha256"], ("pass", UNSUPPORTED), subject)
            verdicts = dict(line.split(" ", 1) for line in maildkim(modified))
            self.assertTrue(verdicts["rsa-sha256"].startswith("fail"), f"{subject}: {verdicts}")
            self.assertTrue(verdicts["ed25519-sha256"].startswith("fail") or verdicts["ed25519-sha256"] == UNSUPPORTED,
                            f"{subject}: {verdicts}")
        if not independent:
            raise unittest.SkipTest("checked with dkimpy only: Mail::DKIM (libmail-dkim-perl) cannot be installed here")


def _dkimpy_passes(data: bytes, index: int, lookup) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(dkim.DKIM(data).verify(index, dnsfunc=lookup))
    except dkim.DKIMException:
        return False
