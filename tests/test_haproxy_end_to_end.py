"""
PROXY protocol end to end: Debian's C{haproxy} (send-proxy-v2) in front of
a running C{twistd pymta} whose SMTP and POP3 listeners are C{haproxy:}
endpoints on 127.0.0.1, with clients on other loopback addresses.

Through the proxy, the client's address (127.0.0.2, 127.0.0.3) is what the
Received line names and what etc/tcp.smtp judges: the proxy's own
address, 127.0.0.1, may relay, the client behind it may not, and a client
the rules deny gets no greeting; POP3 logs the client's failed login.  A
direct connection from an address not in control/trustedproxies is
refused even with a well-formed PROXY header.
"""

from __future__ import annotations

import os
import poplib
import shutil
import smtplib
import socket
import sys
import tempfile

from twisted.trial import unittest

from tests.packages import ensure_program
from tests.proxyheaders import v2
from tests.test_end_to_end import free_port, init_root, start_listening, start_twistd, wait_for

HAPROXY_CONFIG = """\
global
{user}
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind 127.0.0.1:{smtp_front}
    default_backend pymta_smtp
backend pymta_smtp
    server s1 127.0.0.1:{smtp_back} send-proxy-v2
frontend pop3
    bind 127.0.0.1:{pop3_front}
    default_backend pymta_pop3
backend pymta_pop3
    server s1 127.0.0.1:{pop3_back} send-proxy-v2
"""


def received(s: socket.socket) -> bytes:
    """What the server sent before closing (a reset counts as a close)."""
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


class HAProxyInFront(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        haproxy = ensure_program("haproxy", "haproxy")
        if haproxy is None:
            raise unittest.SkipTest("needs haproxy from Debian (install as root on Debian)")
        self.haproxy = haproxy
        base = tempfile.mkdtemp(prefix="pymta-haproxy-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        self.base = base
        self.root = os.path.join(base, "root")

    def start_pymta(self) -> tuple[int, int]:
        root = self.root
        init_root(root, "alice:secret")
        with open(os.path.join(root, "control", "trustedproxies"), "w") as f:
            f.write("# haproxy on this host\n127.0.0.1\n")
        with open(os.path.join(root, "etc", "tcp.smtp"), "w") as f:
            f.write('127.0.0.1:allow,RELAYCLIENT=""\n127.0.0.3:deny\n:allow\n')
        smtp, pop3 = free_port(), free_port()
        self.log = os.path.join(root, "twistd.log")
        start_twistd(self, [os.path.join(os.path.dirname(sys.executable), "twistd")],
                     ["pymta", "--root", root, "--smtp", f"haproxy:tcp:{smtp}:interface=127.0.0.1",
                      "--pop3", f"haproxy:tcp:{pop3}:interface=127.0.0.1", "--allow-plaintext-auth"],
                     self.log, [smtp, pop3])
        return smtp, pop3

    def start_haproxy(self, smtp_back: int, pop3_back: int) -> tuple[int, int]:
        smtp_front, pop3_front = free_port(), free_port()
        config = os.path.join(self.base, "haproxy.cfg")
        user = "    user nobody\n    group nogroup" if os.getuid() == 0 else ""
        with open(config, "w") as f:
            f.write(HAPROXY_CONFIG.format(user=user, smtp_front=smtp_front, smtp_back=smtp_back,
                                          pop3_front=pop3_front, pop3_back=pop3_back))
        errors = os.path.join(self.base, "haproxy.log")
        with open(errors, "w") as stderr:
            start_listening(self, [self.haproxy, "-db", "-f", config], "haproxy", errors, [smtp_front, pop3_front],
                            timeout=30, stderr=stderr)
        return smtp_front, pop3_front

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def test_client_address_through_haproxy(self) -> None:
        smtp_back, pop3_back = self.start_pymta()
        smtp_front, pop3_front = self.start_haproxy(smtp_back, pop3_back)

        # 127.0.0.2 through the proxy: no relay client (127.0.0.1's RELAYCLIENT is the proxy's), named in Received
        with smtplib.SMTP("127.0.0.1", smtp_front, timeout=30, source_address=("127.0.0.2", 0)) as client:
            client.ehlo("client.example")
            client.mail("sender@far.example")
            code, text = client.rcpt("bob@far.example")
            self.assertEqual(code, 553, text)
            self.assertEqual(client.rcpt("alice@test.example")[0], 250)
            self.assertEqual(client.data(b"Subject: via haproxy\r\n\r\nhello\r\n")[0], 250)
        maildir_new = os.path.join(self.root, "home", "alice", "Maildir", "new")
        [name] = wait_for(lambda: os.listdir(maildir_new), 60, "the Maildir delivery", self.log)
        with open(os.path.join(maildir_new, name), "rb") as f:
            delivered = f.read()
        self.assertIn(b"Received: from unknown (HELO client.example) (127.0.0.2)\n", delivered)
        self.assertIn("smtpd: ok 127.0.0.2 -> 127.0.0.1", self.logged())

        # 127.0.0.3 through the proxy: its deny rule applies, no greeting
        with socket.create_connection(("127.0.0.1", smtp_front), timeout=30, source_address=("127.0.0.3", 0)) as s:
            self.assertEqual(received(s), b"")
        wait_for(lambda: "smtpd: deny 127.0.0.3 (tcp.smtp line 2)" in self.logged(), 30, "the deny line", self.log)

        # POP3 through the proxy: the failed login is the client's, then the message is read
        with socket.create_connection(("127.0.0.1", pop3_front), timeout=30, source_address=("127.0.0.2", 0)) as s:
            reader = s.makefile("rb")
            self.assertTrue(reader.readline().startswith(b"+OK "))
            s.sendall(b"USER alice\r\nPASS wrong\r\n")
            self.assertTrue(reader.readline().startswith(b"+OK"))
            self.assertTrue(reader.readline().startswith(b"-ERR"))
        wait_for(lambda: "pop3 login failed alice from 127.0.0.2" in self.logged(), 30, "the failed login", self.log)
        pop = poplib.POP3("127.0.0.1", pop3_front, timeout=30)
        pop.user("alice")
        pop.pass_("secret")
        self.assertIn(b"Subject: via haproxy", b"\n".join(pop.retr(1)[1]))
        pop.quit()

        # straight to pymta from an address not in control/trustedproxies: refused, header or not
        with socket.create_connection(("127.0.0.1", smtp_back), timeout=30, source_address=("127.0.0.4", 0)) as s:
            s.sendall(v2("203.0.113.9", "127.0.0.1", 40000, 25) + b"EHLO x\r\n")
            self.assertEqual(received(s), b"")
        wait_for(lambda: "proxy: refused 127.0.0.4: not in control/trustedproxies" in self.logged(), 30,
                 "the refusal", self.log)
        self.assertNotIn("203.0.113.9", self.logged())
