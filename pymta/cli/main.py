"""
The C{pymta} command: C{pymta SUBCOMMAND [args...]}.

Each subcommand lives in its own module C{pymta.cli.<name>} with a
C{main(argv: list[str]) -> int}; this module only dispatches.
"""

from __future__ import annotations

import importlib
import os
import sys

from pymta.cli.pipes import run_printing

__all__ = ["main", "sendmail_main", "COMMANDS"]

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("pymta.cli.init", "create a pymta root directory"),
    "inject": ("pymta.cli.inject", "queue a message from stdin (qmail-inject)"),
    "sendmail": ("pymta.cli.sendmail", "sendmail-compatible injection"),
    "queue": ("pymta.cli.queue", "qmail-queue interface: message on fd 0, envelope on fd 1"),
    "qstat": ("pymta.cli.qstat", "count queued messages"),
    "qread": ("pymta.cli.qread", "list queued messages and recipients"),
    "qshape": ("pymta.cli.qshape", "the queue by domain and age (Postfix qshape)"),
    "showctl": ("pymta.cli.showctl", "show every control value and where it came from"),
    "ctl": ("pymta.cli.ctl", "control running services (stat, doqueue, reload, pause, cont, queue, tcpok)"),
    "maildirmake": ("pymta.cli.maildirmake", "create a Maildir"),
    "tcprules": ("pymta.cli.tcprules", "check and compile SMTP access rules"),
    "newu": ("pymta.cli.newu", "rebuild the users/assign index"),
    "pw2u": ("pymta.cli.pw2u", "turn /etc/passwd into users/assign lines"),
    "passwd": ("pymta.cli.passwd", "set a POP3/AUTH password in users/passwd"),
    "check": ("pymta.cli.check", "check the configuration with the daemons' own parsers"),
    "deploy": ("pymta.cli.deploy", "write the .tac files and systemd units of this installation"),
    "dns": ("pymta.cli.dns", "the DNS records a domain needs (records) and a check of what is published (check)"),
    "cert": ("pymta.cli.cert", "install a renewed TLS certificate (certbot deploy hook) and reload the daemons"),
    "report": ("pymta.cli.report", "qmailanalog's tables (zoverall, zfailures, ...) from pymta-send's log"),
    "health": ("pymta.cli.health", "is a daemon serving? (send, smtp ENDPOINT, pop3 ENDPOINT, http URL)"),
    "qmail-compat": ("pymta.cli.qmailcompat", "qmail's program paths for qmail's add-ons (install, remove)"),
    "dkim": ("pymta.cli.dkim", "DKIM signing keys: keygen DOMAIN SELECTOR, records"),
    "newaliases": ("pymta.cli.newaliases", "compile ROOT/etc/aliases for fastforward"),
    "maildirsmtp": ("pymta.cli.maildirsmtp", "hand a Maildir's held mail to an SMTP server (serialmail)"),
    "maildirqmtp": ("pymta.cli.maildirqmtp", "hand a Maildir's held mail to a QMTP server (serialmail)"),
}


def version() -> str:
    """The installed distribution's version (from its metadata), as C{pymta --version} prints it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("pymta")
    except PackageNotFoundError:
        return "unknown (not installed)"


def usage() -> str:
    lines = ["usage: pymta SUBCOMMAND [args...] | pymta --version", "", "subcommands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<12} {text}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if argv else 100
    if argv[0] in ("--version", "-V"):
        sys.stdout.write(f"pymta {version()}\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"pymta: unknown subcommand {name!r}\n" + usage())
        return 100
    module = importlib.import_module(COMMANDS[name][0])
    # the reader may go away (pymta qread | head): see pymta.cli.pipes
    return run_printing(lambda: module.main(rest))


def sendmail_main() -> int:
    """Entry point of C{pymta-sendmail} (and of a C{sendmail}/C{mailq} symlink to it)."""
    from pymta.cli import sendmail

    return run_printing(lambda: sendmail.main(sys.argv[1:], progname=os.path.basename(sys.argv[0])))


if __name__ == "__main__":
    sys.exit(main())
