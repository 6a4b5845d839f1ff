# -*- test-case-name: tests.cli.test_dkim -*-
"""
C{pymta dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--root DIR]}:
a new DKIM key (L{pymta.dkim.keygen}) at
C{ROOT/etc/dkim/DOMAIN.SELECTOR.key}, and on standard output the TXT
record to publish (the only line not starting with C{#}) and the
control/dkimkeys line that puts the key to use, to be added once the
record is published.

C{pymta dkim records [--root DIR]}: the TXT record of every key of
control/dkimkeys, from the key files (so run it as root or as the mail
account).

Exit status: 0; 1 the key file exists already (it is never overwritten)
or a key file cannot be read; 100 usage error; 111 the key cannot be
written.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from pymta.control import ControlError, default_root, load_controls
from pymta.dkim.keygen import (
    KEY_TYPES, RSA_BITS, UnsafeKeyDir, dns_record, generate, key_path, public_record, record_of_private, write_key,
)
from pymta.dkim.keys import NAME, key_entries, selector_problem
from pymta.hostnames import host_name_problem
from pymta.secretfile import daemon_account

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 100
EXIT_TEMPORARY = 111


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pymta dkim", description="DKIM signing keys")
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="make a key and print its DNS record")
    keygen.add_argument("domain")
    keygen.add_argument("selector")
    keygen.add_argument("--type", choices=sorted(KEY_TYPES), default="rsa",
                        help=f"rsa ({RSA_BITS} bits, the default) or ed25519")
    keygen.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    records = sub.add_parser("records", help="the DNS records of the keys in control/dkimkeys")
    records.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    return parser


def keygen(root: str, domain: str, selector: str, key_type: str, out: TextIO, err: TextIO) -> int:
    problem = host_name_problem(domain) or selector_problem(selector)
    if problem is not None:
        err.write(f"pymta dkim: {problem}\n")
        return EXIT_USAGE
    path = key_path(root, domain, selector)
    key = generate(key_type)
    try:
        write_key(path, key, daemon_account(root))
    except FileExistsError:
        err.write(f"pymta dkim: {path} exists; it is never overwritten (choose another selector)\n")
        return EXIT_FAILED
    except UnsafeKeyDir as e:
        err.write(f"pymta dkim: {e}: no key written\n")
        return EXIT_FAILED
    except OSError as e:
        err.write(f"pymta dkim: cannot write {path}: {e.strerror}\n")
        return EXIT_TEMPORARY
    kind = f"rsa-sha256, {RSA_BITS} bits" if key_type == "rsa" else "ed25519-sha256"
    out.write(f"# wrote {path} ({kind}, mode 0600)\n")
    out.write(f"# 1. publish this record in the zone of {domain.lower()}:\n")
    out.write(dns_record(domain, selector, public_record(key)) + "\n")
    out.write(f"# 2. once DNS serves it, add this line to {os.path.join(root, 'control', NAME)} "
              "and run 'pymta ctl reload':\n")
    out.write(f"# {domain.lower()}:{selector}:{path}\n")
    return EXIT_OK


def records(root: str, out: TextIO, err: TextIO) -> int:
    try:
        entries = key_entries(load_controls(root))
    except ControlError as e:
        err.write(f"pymta dkim: {e}\n")
        return EXIT_FAILED
    status = EXIT_OK
    for entry in entries:
        try:
            with open(entry.path, "rb") as f:
                text = record_of_private(f.read(64 * 1024))
        except (OSError, ValueError) as e:
            err.write(f"pymta dkim: {entry.path}: {getattr(e, 'strerror', None) or e}\n")
            status = EXIT_FAILED
            continue
        out.write(dns_record(entry.domain, entry.selector, text) + "\n")
    return status


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    root = os.path.abspath(args.root or default_root())
    if args.command == "keygen":
        return keygen(root, args.domain, args.selector, args.type, out, err)
    return records(root, out, err)
