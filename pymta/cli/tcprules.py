# -*- test-case-name: tests.cli.test_tcprules -*-
"""
C{pymta tcprules [--root ROOT] [FILE]} - check SMTP access rules.

Reads FILE (default ROOT/etc/tcp.smtp) in tcprules' text format and reports
the first line that does not parse the way ucspi-tcp's tcprules does
(C{tcprules: fatal: unable to parse this line: ...}, exit 100), or that
pymta refuses because it could never apply (C{tcprules: fatal: REASON:
LINE}; see L{pymta.smtpd.access}).  There is
no compiled index: pymta-smtpd reads the text file at start and on reload,
so a file that passes this check is what the daemon will use.

C{--check IP [--host NAME] [--info USER]} prints which rule applies to a
client, in tcprulescheck's words.

Exit codes: 0 ok, 100 syntax error or bad usage, 111 file unreadable.
"""

from __future__ import annotations

import argparse
import os
import sys

from pymta.control import default_root
from pymta.smtpd.access import ALLOW_ALL, AccessRules, TcpRulesError

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pymta tcprules", description="check SMTP access rules (tcprules format)")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("--check", metavar="IP", help="show the rule that applies to this client address")
    parser.add_argument("--host", help="the client's host name for --check")
    parser.add_argument("--info", help="the client's ident/user information for --check")
    parser.add_argument("file", nargs="?", help="rules file (default ROOT/etc/tcp.smtp)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 100
    root = args.root or default_root()
    path = args.file or os.path.join(root, "etc", "tcp.smtp")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        sys.stderr.write(f"tcprules: fatal: unable to read {path}: {e.strerror or e}\n")
        return 111
    try:
        rules = AccessRules.parse(text, path)
    except TcpRulesError as e:
        sys.stderr.write(f"tcprules: fatal: {e.why}: {e.line}\n")
        sys.stderr.write(f"tcprules: {path}:{e.lineno}\n")
        return 100
    for lineno, overlap in rules.overlaps:
        sys.stderr.write(f"tcprules: warning: {path}:{lineno}: {overlap}\n")
    if args.check is None:
        sys.stdout.write(f"tcprules: {path}: ok, {len(rules)} rule keys\n")
        return 0
    rule = rules.lookup(args.check, host=args.host, info=args.info)
    if rule is ALLOW_ALL:
        sys.stdout.write("default:\nallow connection\n")
        return 0
    sys.stdout.write(f"rule {rule.key}: (line {rule.lineno})\n")
    for name, value in rule.env:
        sys.stdout.write(f"set environment variable {name}={value}\n")
    sys.stdout.write("allow connection\n" if rule.allow else "deny connection\n")
    return 0
