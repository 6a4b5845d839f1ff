"""
The sender checks end to end: C{twistd pymta} resolves through a real
authoritative DNS server (NSD, L{tests.authdns}) serving SPF, DKIM and
DMARC records, by control/resolvers; mail from an untrusted client is
delivered with an Authentication-Results field whose SPF, DKIM and DMARC
verdicts are checked for each result (softfail exists for SPF only).
Names under C{slow.auth.test} go to a forwarder that never answers them
(a server that does not answer: C{temperror} within control/senderauth's
timeout, and the mail is still taken).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading

import dns.exception
import dns.message
import dns.query
from twisted.trial import unittest

from tests.authdns import start_nsd
from tests.senderauth.fakedns import Key
from tests.test_end_to_end import SRC, free_port, start_twistd, wait_for

ZONE = """$ORIGIN auth.test.
@ 3600 IN SOA ns.auth.test. hostmaster.auth.test. 1 3600 600 86400 300
@ 3600 IN NS ns.auth.test.
ns 3600 IN A 127.0.0.1
client 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
pass 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
fail 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"
softfail 300 IN TXT "v=spf1 ~all"
none 300 IN A 192.0.2.2
permerror 300 IN TXT "v=spf1 frobnicate -all"
sel._domainkey.pass 300 IN TXT {key}
_dmarc.pass 300 IN TXT "v=DMARC1; p=reject"
_dmarc.fail 300 IN TXT "v=DMARC1; p=reject"
_dmarc.permerror 300 IN TXT "v=DMARC1; p=bogus"
"""

#: Subject -> (MAIL FROM, From domain, how it is signed: None, "pass", "nokey", "slow", "modified"), then the verdicts
CASES = {
    "one": ("a@pass.auth.test", "pass.auth.test", "pass", ("spf=pass", "dkim=pass", "dmarc=pass")),
    "two": ("a@fail.auth.test", "fail.auth.test", "modified", ("spf=fail", "dkim=fail", "dmarc=fail")),
    "three": ("a@softfail.auth.test", "none.auth.test", None, ("spf=softfail", "dkim=none", "dmarc=none")),
    "four": ("a@none.auth.test", "permerror.auth.test", "nokey", ("spf=none", "dkim=permerror", "dmarc=permerror")),
    "five": ("a@permerror.auth.test", "slow.auth.test", "slow", ("spf=permerror", "dkim=temperror", "dmarc=temperror")),
    "six": ("a@slow.auth.test", "pass.auth.test", None, ("spf=temperror", "dkim=none", "dmarc=fail")),
}


class SilentForwarder:
    """A UDP DNS forwarder to C{port} that drops every question under C{silent}."""

    def __init__(self, port: int, silent: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.upstream, self.silent = port, silent
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
                query = dns.message.from_wire(wire)
            except OSError:
                return
            except dns.exception.DNSException:
                continue
            name = query.question[0].name.to_text().lower()
            if name.endswith(self.silent + "."):
                continue
            try:
                answer = dns.query.udp(query, "127.0.0.1", port=self.upstream, timeout=2)
                self.sock.sendto(answer.to_wire(), peer)
            except (dns.exception.DNSException, OSError):
                continue

    def close(self) -> None:
        self.sock.close()


def message(subject: str, from_domain: str, signing: str | None) -> bytes:
    text = f"From: Alice <alice@{from_domain}>\nTo: alice@test.example\nSubject: {subject}\n\nHello {subject}.\n".encode()
    text = b"Authentication-Results: test.example; dkim=pass header.d=forged.test\n" + text
    key = Key.get()
    if signing == "pass":
        text = key.sign(text, "pass.auth.test")
    elif signing == "modified":
        text = key.sign(text, "pass.auth.test").replace(b"Hello", b"Hullo")
    elif signing == "nokey":
        text = key.sign(text, "pass.auth.test", "nokey")
    elif signing == "slow":
        text = key.sign(text, "slow.auth.test")
    return text.replace(b"\n", b"\r\n")


class LiveSenderChecks(unittest.SynchronousTestCase):
    def test_verdicts_through_a_real_dns_server(self) -> None:
        record = " ".join(f'"{Key.get().record[i:i + 250]}"' for i in range(0, len(Key.get().record), 250))
        port = start_nsd(self, {"auth.test": ZONE.format(key=record)})
        if port is None:
            raise unittest.SkipTest("NSD cannot be installed here")
        forwarder = SilentForwarder(port, "slow.auth.test")
        self.addCleanup(forwarder.close)

        base = tempfile.mkdtemp(prefix="pymta-sa-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        root = os.path.join(base, "root")
        init = [root, "--me", "test.example", "--user", "alice:secret"]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                       stdout=subprocess.DEVNULL)
        for name, text in (("control/senderauth", "check\ntimeout 3\n"),
                           ("control/resolvers", f"127.0.0.1:{forwarder.port}\n"),
                           ("etc/tcp.smtp", ":allow\n")):  # 127.0.0.1 is no relay client here: it is checked
            with open(os.path.join(root, name), "w") as f:
                f.write(text)

        smtp = free_port()
        log = os.path.join(root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", root, "--smtp", f"tcp:{smtp}:interface=127.0.0.1"], log, [smtp])
        with smtplib.SMTP("127.0.0.1", smtp, local_hostname="client.auth.test", timeout=30) as client:
            for subject, (sender, from_domain, signing, _) in CASES.items():
                client.sendmail(sender, ["alice@test.example"], message(subject, from_domain, signing))

        new = os.path.join(root, "home", "alice", "Maildir", "new")
        wait_for(lambda: os.path.isdir(new) and len(os.listdir(new)) >= len(CASES), 60, "the deliveries", log)
        delivered = {}
        for name in os.listdir(new):
            with open(os.path.join(new, name), "rb") as f:
                data = f.read()
            subject = data.split(b"\nSubject: ", 1)[1].split(b"\n", 1)[0].decode()
            delivered[subject] = data
        for subject, (sender, from_domain, _, verdicts) in CASES.items():
            data = delivered[subject]
            header = data.split(b"Authentication-Results: test.example;\n", 1)[1].split(b"\nReceived:", 1)[0].decode()
            self.assertIn("spf=pass reason=\"sender SPF authorized\" smtp.helo=client.auth.test", header, subject)
            for verdict in verdicts:
                self.assertIn("\t" + verdict, header, f"{subject}: {verdict} in {header}")
            self.assertIn(f"smtp.mailfrom={sender.split('@')[1]}", header)
            self.assertIn(f"header.from={from_domain}", header)
            self.assertNotIn(b"header.d=forged.test", data, subject)  # the forged field of our authserv-id is gone
