# -*- test-case-name: tests.configcheck.test_certificate -*-
"""
C{ROOT/control/servercert.pem}, read by L{pymta.tls.load_server_options}
as pymta-smtpd and pymta-pop3d read it.

  - absent: a warning (no STARTTLS, no implicit TLS; the submission port
    then offers no AUTH and POP3 refuses every login, unless the daemons
    run with C{--allow-plaintext-auth});
  - unreadable, no key, no certificate, a key matching no certificate: an
    error;
  - expired: an error; expiring within L{EXPIRY_WARNING}, or not valid
    yet: a warning;
  - readable by every local user: an error (it holds the private key);
    readable by a group other than the daemons': a warning; owned by an
    account other than root or the daemons': a warning (that account can
    replace the key); not readable by the account the daemons run as: a
    warning (they read it at start, as root, but a reload after dropping
    root fails).
"""

from __future__ import annotations

import datetime
import os
import stat
from typing import Any, Iterator

from cryptography import x509

from pymta.configcheck.problem import ERROR, WARNING, CheckContext, Problem, problem_from_message
from pymta.fsaccess import READ, Account, may

__all__ = ["check_certificate", "EXPIRY_WARNING", "may_read"]

EXPIRY_WARNING = datetime.timedelta(days=30)


def may_read(st: os.stat_result, account: tuple[int, int]) -> bool:
    """True when the owner of C{account} (uid, gid) may read a file with status C{st}."""
    return may(st, Account(*account), READ)


def _leaf(options: Any, path: str) -> x509.Certificate | None:
    """The certificate the server presents: the one the options hold, else the first in the file."""
    certificate = getattr(options, "certificate", None)
    if certificate is not None and hasattr(certificate, "to_cryptography"):
        leaf: x509.Certificate = certificate.to_cryptography()
        return leaf
    try:
        with open(path, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError):
        return None
    return certs[0] if certs else None


def _validity(path: str, leaf: x509.Certificate, now: datetime.datetime) -> Iterator[Problem]:
    expires = leaf.not_valid_after_utc
    if expires <= now:
        yield Problem(path, 0, ERROR, f"the certificate expired on {expires:%Y-%m-%d %H:%M} UTC")
    elif expires - now < EXPIRY_WARNING:
        days = (expires - now).days
        yield Problem(path, 0, WARNING, f"the certificate expires on {expires:%Y-%m-%d %H:%M} UTC, in {days} days")
    starts = leaf.not_valid_before_utc
    if starts > now:
        yield Problem(path, 0, WARNING, f"the certificate is not valid before {starts:%Y-%m-%d %H:%M} UTC")


def _access(path: str, st: os.stat_result, account: tuple[int, int] | None) -> Iterator[Problem]:
    mode = stat.S_IMODE(st.st_mode)
    daemon_uid, daemon_gid = account if account is not None else (None, None)
    if mode & stat.S_IROTH:
        yield Problem(path, 0, ERROR, f"mode {mode:04o}: every local user can read the private key (chmod 600)")
    elif mode & stat.S_IRGRP and st.st_gid != daemon_gid:
        yield Problem(path, 0, WARNING, f"mode {mode:04o}: group {st.st_gid} can read the private key")
    if st.st_uid not in (0, daemon_uid):
        yield Problem(path, 0, WARNING, f"owned by uid {st.st_uid}, who can replace the key; "
                                        "give it to root or to the mail account")
    if account is not None and not may_read(st, account):
        yield Problem(path, 0, WARNING,
                      f"not readable by uid {account[0]}, the account the daemons run as: "
                      "they read it at start as root, but a reload would fail")


def check_certificate(ctx: CheckContext) -> Iterator[Problem]:
    from pymta.tls import TLSConfigError, cert_path, load_server_options

    path = cert_path(ctx.root)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        yield Problem(path, 0, WARNING,
                      "absent: no STARTTLS and no implicit TLS; the submission port offers no AUTH and POP3 "
                      "refuses every login (unless the daemons run with --allow-plaintext-auth)")
        return
    except OSError as e:
        yield Problem(path, 0, ERROR, f"cannot read it: {e.strerror}")
        return
    yield from _access(path, st, ctx.account)
    try:
        options = load_server_options(path)
    except TLSConfigError as e:
        yield problem_from_message(str(e), path)
        return
    leaf = _leaf(options, path)
    if leaf is not None:
        yield from _validity(path, leaf, ctx.now)
