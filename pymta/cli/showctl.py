# -*- test-case-name: tests.cli.test_showctl -*-
"""
C{pymta showctl [--root DIR]}: every control value and where it came from
(qmail-showctl; see docs/internals.md, 'Administrative tools').

After a few lines about the root (directory, user-ext delimiter, queue
split, owner of the queue), each control file of L{pymta.control.SPECS}
gets a paragraph::

    concurrencyremote (default): 20
      # simultaneous remote deliveries (0 = hold); used by send

The source in parentheses is C{file} (read from C{control/NAME}), C{me}
(the value of C{control/me}, the fallback of host name files) or
C{default} (pymta's built-in default, qmail's).  List and table files
show one entry per line.  Then pymta's own extra files (C{servercert.pem},
C{rbls}, ...) when present, and every other file in C{control/} as qmail
does: C{NAME: I have no idea what this file does.}

A malformed control file - qmail's or one of pymta's extra files, each
read by the parser its daemon uses (L{pymta.extracontrols}) - is shown as
C{NAME: Oops! FILE:LINE: reason} (the rest of the listing still appears),
reported on standard error, and the command exits 111, as it does for a
root without a readable C{control/}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
from typing import TextIO

from pymta.control import SPECS, ControlError, Controls, default_root, load_controls
from pymta.queue.layout import QueueLayout

__all__ = ["main", "show", "EXTRA_FILES"]

#: control files pymta reads beyond qmail's set, with what they do
EXTRA_FILES: dict[str, str] = {
    "servercert.pem": "TLS private key and certificate chain for smtpd (STARTTLS, implicit TLS) and pop3d (STLS)",
    "rbls": "DNS blocklist zones asked for every SMTP client (rblsmtpd style)",
    "concurrencyperip": "simultaneous SMTP sessions one client address (IPv6: its /64) may hold",
    "rcptcheck": "refuse unknown local recipients at RCPT time when present",
    "tlsdestinations": "per-destination TLS policy for remote delivery",
    "smarthostauth": "passwords for the smtproutes relays that log in (auth=); shown masked",
    "queuesync": "how pymta-send makes the queue durable: fsync (each file and directory) or syncfs (the file system)",
    "morercpthosts.cdb": "not used: pymta reads morercpthosts directly",
    "senderauth": "SPF, DKIM and DMARC checks of received mail (Authentication-Results) and their optional refusals",
    "resolvers": "the DNS servers pymta asks instead of /etc/resolv.conf's",
    "qmtproutes": "domains delivered over QMTP (domain:relay[:port], port 209 by default)",
    "dkimkeys": "DKIM keys (DOMAIN:SELECTOR:KEYFILE) that sign mail of trusted SMTP sessions and local injection",
    "mtasts": "MTA-STS in remote delivery: off, or the CA file for policy servers and MX hosts (absent: on, system CAs)",
    "bounceformat": "the form of failure reports: qsbmf (qmail's, the default) or dsn (RFC 3464 multipart/report)",
    "trustedproxies": "proxies (addresses, prefixes) whose PROXY headers haproxy: listeners believe (absent: none)",
    "lmtproutes": "domains handed to an LMTP server (domain:unix:/path or domain:host[:port]; concurrency=N recipients=N)",
    "milters": "content filters (milters) smtpd asks, in order: NAME unix:/path|inet:HOST:PORT [default= connect= command= content=]",
}

_SOURCE = {"file": "file", "me": "me", "default": "default"}


def _safe(text: str) -> str:
    """Non-printable characters shown as C{?}, as qmail-showctl does."""
    return "".join(ch if 32 <= ord(ch) <= 126 else "?" for ch in text)


def _value_lines(name: str, value: object) -> tuple[str, list[str]]:
    """(text after the colon, further lines) for one value."""
    if value is None:
        if name == "rcpthosts":
            return "(absent) SMTP clients may send to ANY domain: an open relay!", []
        if name == "me":
            return "undefined! Every host name file falls back to its literal default.", []
        return "(absent)", []
    if isinstance(value, (frozenset, set)):
        entries = sorted(value)
        return ("(none)" if not entries else f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}",
                [_safe(e) for e in entries])
    if isinstance(value, tuple):
        return ("(none)" if not value else f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}",
                [_safe(str(e)) for e in value])
    if isinstance(value, dict) or hasattr(value, "items"):
        items = list(value.items())  # type: ignore[attr-defined]
        return ("(none)" if not items else f"{len(items)} entr{'y' if len(items) == 1 else 'ies'}",
                [_safe(f"{k}:{v}") for k, v in items])
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        return "", [_safe(line) for line in value.rstrip("\n").split("\n")]
    return _safe(str(value).rstrip("\n")), []


def _certificate_summary(path: str) -> str:
    from cryptography import x509

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"Oops! Unable to read it: {e.strerror}."
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        return "Oops! No PEM certificate in this file."
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        subject = ", ".join(str(v) for v in names.get_values_for_type(x509.DNSName)) or cert.subject.rfc4514_string()
    except x509.ExtensionNotFound:
        subject = cert.subject.rfc4514_string()
    expires = cert.not_valid_after_utc
    note = " EXPIRED" if expires < datetime.datetime.now(datetime.timezone.utc) else ""
    issuer = "self-signed" if cert.issuer == cert.subject else f"issued by {cert.issuer.rfc4514_string()}"
    has_key = b"PRIVATE KEY-----" in data
    return (f"certificate for {_safe(subject)}, {issuer}, valid until {expires:%Y-%m-%d}{note}"
            f"{'' if has_key else '; Oops! no private key in this file'}.")


def _shown(name: str, line: str) -> str:
    """A line of extra file C{name} as listed: passwords masked."""
    from pymta.remote.smarthostauth import NAME, masked

    return masked(line) if name == NAME else line


def _extra_error(controls: Controls, name: str) -> ControlError | None:
    """What is wrong with extra file C{name}: its parser's error (L{pymta.extracontrols}), or None."""
    from pymta.extracontrols import PARSERS

    try:
        controls.extra_lines(name)
        parse = PARSERS.get(name)
        if parse is not None:
            parse(controls)
    except ControlError as e:
        return e
    return None


def _root_lines(root: str) -> list[str]:
    lines = [f"pymta root directory: {root}.", "user-ext delimiter: -."]
    queuedir = os.path.join(root, "queue")
    try:
        split = QueueLayout(queuedir).split
        lines.append(f"subdirectory split: {split}.")
    except (OSError, ValueError) as e:
        lines.append(f"subdirectory split: Oops! {e}.")
    try:
        st = os.stat(queuedir)
        lines.append(f"queue owner (mail uid:gid): {st.st_uid}:{st.st_gid}.")
    except OSError:
        lines.append("queue owner (mail uid:gid): no queue yet.")
    return lines


def _load_around_errors(root: str) -> tuple[Controls, dict[str, ControlError]]:
    """
    The controls of C{root}, and the malformed files by name.  Every file
    that does not parse is left out (shown with its error), so one typo
    does not hide the rest of the listing: the files are read from a
    private copy of C{control/} without the broken ones.
    """
    try:
        return load_controls(root), {}
    except ControlError as e:
        first: ControlError = e
    error: ControlError | None = first
    broken: dict[str, ControlError] = {}
    with tempfile.TemporaryDirectory(prefix="pymta-showctl-") as scratch:
        copy = os.path.join(scratch, "control")
        os.mkdir(copy)
        for spec in SPECS:
            source = os.path.join(root, "control", spec.name)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(copy, spec.name))
        for _ in range(len(SPECS) + 1):
            assert error is not None
            name = os.path.basename(error.path)
            broken[name] = error
            try:
                os.unlink(os.path.join(copy, name))
            except FileNotFoundError:
                raise error from None  # not one of the copied files: give up on the listing
            try:
                controls = load_controls(scratch)
            except ControlError as again:
                error = again
                continue
            controls = dataclasses.replace(controls, controldir=os.path.join(root, "control"))
            return controls, {n: ControlError(os.path.join(root, "control", n), e.lineno, e.reason)
                              for n, e in broken.items()}
    raise first


def show(root: str, out: TextIO) -> int:
    """Write the listing of C{root}; returns the exit code (0, or 111 on trouble)."""
    for line in _root_lines(root):
        out.write(line + "\n")
    controldir = os.path.join(root, "control")
    try:
        names = sorted(os.listdir(controldir))
    except OSError as e:
        out.write(f"Oops! Unable to read {controldir}: {e.strerror}.\n")
        return 111
    try:
        controls, broken = _load_around_errors(root)
    except OSError as e:
        out.write(f"Oops! Unable to read {controldir}: {e.strerror}.\n")
        return 111
    for spec in SPECS:
        if spec.name in broken:
            out.write(f"\n{spec.name}: Oops! {broken[spec.name]}\n")
            out.write(f"  # {spec.description}; used by {spec.users}\n")
            continue
        value = getattr(controls, spec.name)
        source = _SOURCE.get(controls.sources.get(spec.name, "default"), "default")
        if spec.name == "locals" and source == "default" and controls.me:
            source = "me"  # qmail's default for locals is me
        summary, extra = _value_lines(spec.name, value)
        out.write(f"\n{spec.name} ({source}):{' ' + summary if summary else ''}\n")
        for line in extra:
            out.write(f"    {line}\n")
        out.write(f"  # {spec.description}; used by {spec.users}\n")
    known = {spec.name for spec in SPECS}
    for name in names:
        if name in known:
            continue
        if name == "servercert.pem":
            out.write(f"\n{name}: {_certificate_summary(os.path.join(controldir, name))}\n")
            out.write(f"  # {EXTRA_FILES[name]}\n")
        elif name in EXTRA_FILES:
            error = _extra_error(controls, name)
            if error is not None:
                broken[name] = error
                out.write(f"\n{name}: Oops! {error}\n  # {EXTRA_FILES[name]}\n")
                continue
            lines = [_safe(_shown(name, line)) for line in controls.extra_lines(name) or []]
            out.write(f"\n{name} (file):{' (empty)' if not lines else ''}\n")
            for line in lines:
                out.write(f"    {line}\n")
            out.write(f"  # {EXTRA_FILES[name]}\n")
        else:
            out.write(f"\n{_safe(name)}: I have no idea what this file does.\n")
    for error in broken.values():
        sys.stderr.write(f"pymta showctl: fatal: {error}\n")
    return 111 if broken else 0


def main(argv: list[str], stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pymta showctl", description="show every control value and its source")
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT or /var/pymta)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 100 if e.code else 0
    out = stdout or sys.stdout
    status = show(os.path.abspath(args.root or default_root()), out)
    out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
