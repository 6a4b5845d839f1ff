"""
Interoperability with real mail fetchers: getmail6 and fetchmail fetch from
pymta-pop3d (implicit TLS) into a Maildir and delete on the server.

Runs when the program is installed, or - as root with apt-get - after
installing it; skipped otherwise.
"""

from __future__ import annotations

import os
import pwd
import subprocess

from twisted.internet import defer, threads

from tests.pop3d.helpers import make_maildir
from tests.pop3d.test_childmailbox import chown_tree
from tests.packages import ensure_program
from tests.pop3d.test_service import ServiceTestBase

def maildir_messages(maildir: str) -> list[bytes]:
    out = []
    for sub in ("new", "cur"):
        for name in sorted(os.listdir(os.path.join(maildir, sub))):
            with open(os.path.join(maildir, sub, name), "rb") as f:
                out.append(f.read())
    return out


class InteropTests(ServiceTestBase):
    allow_plaintext = False
    listen = ["ssl:0:interface=127.0.0.1"]
    timeout = 120

    def run_program(self, argv: list[str]) -> defer.Deferred:
        # getmail is the system's Python: keep this interpreter's PYTHON* variables away from it
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return threads.deferToThread(subprocess.run, argv, capture_output=True, timeout=60, check=False, env=env)

    def check_fetched(self, dest: str) -> None:
        fetched = maildir_messages(dest)
        self.assertEqual(len(fetched), 3)
        bodies = b"\n".join(fetched)
        for needle in (b"Subject: one", b"Subject: two", b"Subject: three", b"\n.dot\n", b"\nlast"):
            self.assertIn(needle, bodies)
        self.assertNotIn(b"..dot", bodies)
        self.assertEqual(self.cur_names(), [])  # deleted on the server after the fetch

    @defer.inlineCallbacks
    def test_getmail6_into_maildir(self):  # type: ignore[no-untyped-def]
        getmail = ensure_program("getmail", "getmail6")
        if getmail is None:
            raise self.skipTest("getmail6 not installed")
        dest = make_maildir(os.path.abspath(self.mktemp()))
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        as_user = ""
        if os.getuid() == 0:  # getmail refuses to deliver as root: deliver as nobody
            nobody = pwd.getpwnam("nobody")
            os.chmod(os.path.dirname(dest), 0o755)
            chown_tree(dest, nobody.pw_uid, nobody.pw_gid)
            as_user = "user = nobody\n"
        rc = os.path.join(state, "getmailrc")
        with open(rc, "w") as f:
            f.write(
                "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\n"
                f"port = {self.ports[0]}\nusername = bob\npassword = builder\n\n"
                f"[destination]\ntype = Maildir\npath = {dest}/\n{as_user}\n"
                "[options]\ndelete = true\nread_all = true\nverbose = 0\nmessage_log_syslog = false\n"
            )
        proc = yield self.run_program([getmail, f"--getmaildir={state}", f"--rcfile={rc}"])
        self.assertEqual(proc.returncode, 0, proc.stderr + proc.stdout)
        self.check_fetched(dest)

    @defer.inlineCallbacks
    def test_fetchmail_with_mda(self):  # type: ignore[no-untyped-def]
        fetchmail = ensure_program("fetchmail", "fetchmail")
        if fetchmail is None:
            raise self.skipTest("fetchmail not installed")
        dest = make_maildir(os.path.abspath(self.mktemp()))
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        rc = os.path.join(state, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(
                f"poll 127.0.0.1 service {self.ports[0]} protocol pop3 uidl\n"
                "  user alice password secret ssl no sslcertck fetchall nokeep\n"
                f"  mda \"/bin/sh -c 'cat > {dest}/tmp/m.$$ && mv {dest}/tmp/m.$$ {dest}/new/m.$$'\"\n"
            )
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=state, FETCHMAILHOME=state)
        proc = yield threads.deferToThread(
            subprocess.run, [fetchmail, "--nosyslog", "-f", rc, "--pidfile", os.path.join(state, "pid")],
            capture_output=True, timeout=60, check=False, env=env,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr + proc.stdout)
        self.check_fetched(dest)
