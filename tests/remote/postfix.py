"""
A private Postfix instance on 127.0.0.1 for interop tests and benchmarks.

Needs root and Debian's postfix (benchmarks/remote_install_postfix.sh).  The
instance has its own config, queue and data directories under C{base}, no
chroot, one virtual Maildir domain (C{example.test}, mailboxes owned by
nobody) and STARTTLS with the given certificate.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from tests.packages import ensure_program

POSTFIX = "/usr/sbin/postfix"
# keeps the package from configuring a system instance on port 25; tests run private ones
POSTFIX_PRESEED = "postfix postfix/main_mailer_type select No configuration\n"
SMTP_SINK = "/usr/sbin/smtp-sink"

MASTER_CF = """\
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = sink.example.test
mydomain = example.test
myorigin = sink.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = example.test
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = texthash:{base}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_tls_cert_file = {base}/cert.pem
smtpd_tls_key_file = {base}/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
maillog_file_prefixes = {base}
maillog_file = {base}/maillog
biff = no
alias_maps =
alias_database =
smtputf8_enable = no
"""


def available() -> str | None:
    """None when an instance can run here, else the reason to skip."""
    if os.getuid() != 0:
        return "needs root"
    if ensure_program(POSTFIX, "postfix", preseed=POSTFIX_PRESEED) is None:
        return "postfix is not installed and could not be installed"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


class PostfixInstance:
    def __init__(self, base: str, port: int, cert: bytes, key: bytes, users: tuple[str, ...] = ("bob",)) -> None:
        self.base = os.path.abspath(base)
        self.port = port
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        nobody = pwd.getpwnam("nobody")
        for name in ("queue", "data", "mail"):
            os.makedirs(os.path.join(self.base, name), exist_ok=True)
        os.chown(os.path.join(self.base, "data"), pwd.getpwnam("postfix").pw_uid, -1)
        os.chown(os.path.join(self.base, "mail"), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.base, "cert.pem"), "wb") as f:
            f.write(cert)
        with open(os.path.join(self.base, "key.pem"), "wb") as f:
            f.write(key)
        os.chmod(os.path.join(self.base, "key.pem"), 0o600)
        with open(os.path.join(self.base, "vmailbox"), "w") as f:
            for user in users:
                f.write(f"{user}@example.test {user}/\n")
        with open(os.path.join(self.base, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(base=self.base, uid=nobody.pw_uid, gid=nobody.pw_gid))
        with open(os.path.join(self.base, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{port}"))

    def override(self, settings: dict[str, str]) -> None:
        """Set these main.cf parameters, replacing the lines that set them (before start)."""
        main_cf = os.path.join(self.base, "main.cf")
        with open(main_cf) as f:
            kept = [line for line in f if line.split("=", 1)[0].strip() not in settings]
        with open(main_cf, "w") as f:
            f.writelines(kept)
            f.writelines(f"{key} = {value}\n" for key, value in settings.items())

    #: seconds a postfix(1) command may take (`postfix start` checks every queue file: a big queue takes longer)
    command_timeout: float = 60

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", self.base, *args], capture_output=True, text=True,
                              timeout=self.command_timeout)

    def start(self) -> None:
        result = self.postfix("start")
        if result.returncode != 0:
            raise RuntimeError(f"postfix start failed: {result.stdout}{result.stderr}")

    def stop(self) -> None:
        self.postfix("stop")
        pid_file = os.path.join(self.base, "queue", "pid", "master.pid")
        if os.path.exists(pid_file):
            self.postfix("abort")

    def maildir_messages(self, user: str = "bob") -> list[bytes]:
        new = os.path.join(self.base, "mail", user, "new")
        if not os.path.isdir(new):
            return []
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def maillog(self) -> str:
        try:
            with open(os.path.join(self.base, "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
