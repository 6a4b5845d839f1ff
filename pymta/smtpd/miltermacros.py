# -*- test-case-name: tests.smtpd.test_miltermacros -*-
"""
The macros smtpd gives its content filters at each stage
(L{pymta.milter.api.Macros}), with the names and values Sendmail and
Postfix give, so that filters written for them find what they read.

Pure functions of what the session knows (L{ClientFacts},
L{TLSFacts}), so every value is tested without a socket.

C{i}, the transaction id: pymta's queue id is the message file's inode
number and exists only once the queue has committed the message, after
the filters have spoken.  So C{i} is smtpd's own id of the transaction,
C{<pid in hex>.<n>} (the process and a counter of its transactions, unique
on the host while the daemon runs).  smtpd's C{milter:} log lines name
it; the queue's id is in smtpd's C{message ID queued} line of the same
client that follows.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from pymta import __version__

__all__ = ["ClientFacts", "TLSFacts", "connect_macros", "helo_macros", "mail_macros", "rcpt_macros",
           "tls_facts", "new_transaction_id", "split_address"]


@dataclass(frozen=True)
class ClientFacts:
    """The session's client and local end, at connect."""

    me: str
    client_addr: str
    client_port: int
    #: the client's name from the access rules' reverse lookup (C{TCPREMOTEHOST}), None when unknown
    client_name: str | None
    if_addr: str


@dataclass(frozen=True)
class TLSFacts:
    """The TLS session of an encrypted SMTP session (values as OpenSSL names them)."""

    version: str
    cipher: str
    cipher_bits: int
    cert_subject: str | None = None
    cert_issuer: str | None = None


def _client_name(facts: ClientFacts) -> str:
    return facts.client_name or f"[{facts.client_addr}]"


def connect_macros(facts: ClientFacts) -> dict[str, str]:
    """The macros of the connect stage (and the base of every later stage)."""
    return {
        "j": facts.me,
        # the host's name (control/me), as Postfix's default; filters such as rspamd put it in
        # Authentication-Results as the authserv-id, which names the host that checked
        "{daemon_name}": facts.me,
        "v": f"pymta {__version__}",
        "_": f"{_client_name(facts)} [{facts.client_addr}]",
        "{client_addr}": facts.client_addr,
        "{client_port}": str(facts.client_port),
        "{client_name}": _client_name(facts),
        "{client_ptr}": facts.client_name or "unknown",
        "{if_addr}": facts.if_addr,
        "{if_name}": facts.me,
    }


def helo_macros(tls: TLSFacts | None) -> dict[str, str]:
    """HELO/EHLO: the TLS session's, when there is one."""
    if tls is None:
        return {}
    found = {"{tls_version}": tls.version, "{cipher}": tls.cipher, "{cipher_bits}": str(tls.cipher_bits)}
    if tls.cert_subject is not None:
        found["{cert_subject}"] = tls.cert_subject
    if tls.cert_issuer is not None:
        found["{cert_issuer}"] = tls.cert_issuer
    return found


def split_address(address: str) -> tuple[str, str]:
    """C{(local part, domain)}; the domain is empty for an address without C{@}."""
    local, at, domain = address.rpartition("@")
    return (local, domain) if at else (address, "")


def mail_macros(transaction_id: str, sender: str, auth_type: str | None, auth_user: str | None) -> dict[str, str]:
    """MAIL FROM: the transaction id, the sender, and the login when the client is logged in."""
    found = {"i": transaction_id, "{mail_addr}": sender, "{mail_host}": split_address(sender)[1],
             "{mail_mailer}": "smtp" if sender else "error"}
    if auth_user is not None:
        found["{auth_type}"] = auth_type or ""
        found["{auth_authen}"] = auth_user
    return found


def rcpt_macros(transaction_id: str, recipient: str, locals_: frozenset[str]) -> dict[str, str]:
    """RCPT TO: C{{rcpt_mailer}} is C{local} for a domain of control/locals, else C{smtp}."""
    domain = split_address(recipient)[1]
    return {"i": transaction_id, "{rcpt_addr}": recipient, "{rcpt_host}": domain,
            "{rcpt_mailer}": "local" if domain.lower() in locals_ else "smtp"}


_transactions = itertools.count(1)


def new_transaction_id() -> str:
    """The next C{i} of this process: C{<pid in hex>.<n>}."""
    return f"{os.getpid():X}.{next(_transactions)}"


def _name_text(name: Any) -> str:
    """An X509Name as C{/C=../CN=..} (Sendmail's form)."""
    return "".join(f"/{key.decode('ascii', 'replace')}={value.decode('utf-8', 'replace')}"
                   for key, value in name.get_components())


def tls_facts(transport: Any) -> TLSFacts | None:
    """
    The TLS session of C{transport} (a Twisted TLS transport over
    pyOpenSSL), or None when it has none or does not say (TLS ended by a
    proxy in front of smtpd).
    """
    try:
        connection = transport.getHandle()
        version = connection.get_protocol_version_name()
        cipher = connection.get_cipher_name()
        bits = connection.get_cipher_bits()
    except Exception:
        return None
    if not isinstance(version, str) or not isinstance(cipher, str):
        return None
    subject = issuer = None
    try:
        cert = connection.get_peer_certificate()
        if cert is not None:
            subject, issuer = _name_text(cert.get_subject()), _name_text(cert.get_issuer())
    except Exception:
        pass
    return TLSFacts(version, cipher, int(bits or 0), subject, issuer)
