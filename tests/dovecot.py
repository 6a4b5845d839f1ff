"""
A private Dovecot with only its LMTP service, for the LMTP delivery tests
and benchmarks/end_to_end_bench.py's pymta-lmtp mode.

Debian's C{dovecot-lmtpd} (and C{dovecot-core}, C{doveadm}) run from a
config written here: base_dir, state, log and mailboxes under C{base}
(C{maildir:BASE/mail/USER/Maildir}), a passwd-file userdb (users by the
local part of the address: C{auth_username_format = %Ln}), and the LMTP
listeners on the unix socket C{BASE/lmtp} (mode 0666, so pymta-send's
account reaches it) and on 127.0.0.1:C{port}.  The whole instance runs as
an unprivileged account (C{nobody} when the tests run as root, else the
caller), as Dovecot allows: no daemon of the test runs as root.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import subprocess
import time

from tests.packages import ensure_program

__all__ = ["DovecotLMTP", "missing"]

DOVECOT = "/usr/sbin/dovecot"
LMTP = "/usr/lib/dovecot/lmtp"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
hostname = lmtp.test
ssl = no
auth_username_format = %Ln
first_valid_uid = 1
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{base}/mail/%n/Maildir
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = passwd-file
  args = {base}/users
  default_fields = uid={uid} gid={gid} home={base}/mail/%n
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
service lmtp {{
  unix_listener {base}/lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def missing() -> str | None:
    """Why Dovecot's LMTP cannot run here (installing Debian's packages as root first), or None."""
    for program, package in ((LMTP, "dovecot-lmtpd"), (DOVECOT, "dovecot-core"), ("doveadm", "dovecot-core")):
        if ensure_program(program, package) is None:
            return f"needs {program} from Debian's {package} (installed when the tests run as root on Debian)"
    return None


def _account() -> tuple[str, str, int, int]:
    """The account Dovecot runs as: nobody for root, the caller otherwise (name, group, uid, gid)."""
    entry = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name, entry.pw_uid, entry.pw_gid


class DovecotLMTP:
    """
    One private instance under C{base} (a directory the account can reach),
    with C{users} (local parts) as its mailboxes; L{start}, L{stop},
    L{fetch} a mailbox with doveadm.
    """

    def __init__(self, base: str, users: list[str], port: int) -> None:
        self.base = base
        self.port = port
        self.socket = os.path.join(base, "lmtp")
        self.conf = os.path.join(base, "dovecot.conf")
        self.log = os.path.join(base, "dovecot.log")
        self.proc: subprocess.Popen | None = None
        user, group, self.uid, self.gid = _account()
        os.makedirs(os.path.join(base, "mail"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(base=base, user=user, group=group, uid=self.uid, gid=self.gid, port=port))
        with open(os.path.join(base, "users"), "w") as f:
            f.writelines(f"{name}:{{PLAIN}}unused::::::\n" for name in users)
        if os.getuid() == 0:
            for directory, _, files in os.walk(base):
                for name in [directory, *(os.path.join(directory, f) for f in files)]:
                    os.chown(name, self.uid, self.gid)

    def start(self, timeout: float = 30.0) -> None:
        """Run Dovecot in the foreground (as the account); returns once the LMTP socket answers."""
        root = os.getuid() == 0  # then Dovecot runs as the account, without root's groups
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, user=self.uid if root else None,
                                     group=self.gid if root else None, extra_groups=[] if root else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dovecot exited ({self.proc.returncode}); see {self.log}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                    if s.recv(100).startswith(b"220 "):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"dovecot's LMTP socket did not answer; see {self.log}")

    def stop(self) -> None:
        """Stop Dovecot and wait for it (its listeners are gone when this returns)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def fetch(self, user: str, fields: str = "text") -> str:
        """doveadm fetch: C{fields} of every message in C{user}'s INBOX, as doveadm prints them."""
        done = subprocess.run(["doveadm", "-c", self.conf, "fetch", "-u", user, fields, "mailbox", "INBOX", "all"],
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"doveadm fetch failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return done.stdout.decode("utf-8", "replace")
