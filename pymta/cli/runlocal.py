"""
What C{make run} does: initialise an embedded root when it is absent, print
how to use it, then run C{twistd -n pymta} on it in the foreground.

Not a C{pymta} subcommand: it is the README's first command, kept in Python
so the Makefile stays small.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pwd
import secrets
import sys

from pymta.cli import init as init_command

__all__ = ["main"]

DEFAULT_ROOT_UID = 65534  # nobody: the embedded default never delivers as root


def _mailbox_account() -> tuple[str, str | None]:
    """The mailbox user to create and the --mail-uid value when we are root."""
    if os.getuid() != 0:
        return getpass.getuser(), None
    sudo_uid = os.environ.get("SUDO_UID")
    sudo_gid = os.environ.get("SUDO_GID")
    if sudo_uid and sudo_gid and sudo_uid != "0":
        try:
            name = pwd.getpwuid(int(sudo_uid)).pw_name
        except KeyError:
            name = "admin"
        return name, f"{sudo_uid}:{sudo_gid}"
    return "admin", f"{DEFAULT_ROOT_UID}:{DEFAULT_ROOT_UID}"


def _endpoint_port(endpoint: str) -> str:
    parts = endpoint.split(":")
    return parts[1] if len(parts) > 1 else endpoint


def initialise(root: str) -> str | None:
    """Create C{root} with one mailbox user; returns the generated password (None if it existed)."""
    if os.path.exists(os.path.join(root, "control", "me")):
        return None
    user, mail_uid = _mailbox_account()
    password = secrets.token_urlsafe(12)
    argv = [root, "--me", "localhost", "--user", f"{user}:{password}"]
    if mail_uid:
        argv += ["--mail-uid", mail_uid]
    status = init_command.main(argv)
    if status:
        raise SystemExit(status)
    with open(os.path.join(root, "run", "first-password"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(f"{user}:{password}\n")
    return password


def hints(root: str, smtp: str, pop3: str) -> str:
    account = "?"
    try:
        with open(os.path.join(root, "run", "first-password")) as f:
            account = f.read().strip()
    except OSError:
        pass
    user, _, password = account.partition(":")
    sport, pport = _endpoint_port(smtp), _endpoint_port(pop3)
    return f"""
pymta is starting on {root}
  mailbox user: {user}   POP3 password: {password}   (kept in {root}/run/first-password)
  send a message:
    swaks --server 127.0.0.1:{sport} --to {user}@localhost
    python3 -c "import smtplib; s=smtplib.SMTP('127.0.0.1', {sport}); s.sendmail('me@localhost', ['{user}@localhost'], 'Subject: hi\\n\\nhello\\n')"
  read it back:
    python3 -c "import poplib,ssl; p=poplib.POP3('127.0.0.1', {pport}); p.stls(ssl._create_unverified_context()); p.user('{user}'); p.pass_('{password}'); print(p.retr(1)[1])"
  the queue: .venv/bin/pymta qread --root {root}    stop: Ctrl-C
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run")
    parser.add_argument("--root", default="./var/pymta")
    parser.add_argument("--smtp", default="tcp:2525:interface=127.0.0.1")
    parser.add_argument("--submission", default="tcp:2587:interface=127.0.0.1")
    parser.add_argument("--pop3", default="tcp:1110:interface=127.0.0.1")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    initialise(root)
    sys.stdout.write(hints(root, args.smtp, args.pop3))
    sys.stdout.flush()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    command = [twistd, "-n", "--pidfile=", "--logfile=-"]
    if os.getuid() == 0:
        # only the local spawner keeps root; everything else runs as the mail uid
        st = os.stat(os.path.join(root, "queue"))
        command += ["--uid", str(st.st_uid), "--gid", str(st.st_gid)]
    command += ["pymta", "--root", root, "--smtp", args.smtp,
                "--submission", args.submission, "--pop3", args.pop3]
    os.execv(twistd, command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
