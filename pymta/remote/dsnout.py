# -*- test-case-name: tests.remote.test_dsnout -*-
"""
Passing a message's DSN requests on (RFC 3461 section 5.2): when the next
server offers C{DSN} in its EHLO reply, MAIL carries C{RET}/C{ENVID} and
each RCPT its recipient's C{NOTIFY}/C{ORCPT}, as the client asked us; the
server then reports on those recipients itself.  A server without C{DSN}
gets plain commands, and a success of a recipient that asked for one is
reported by pymta-send as C{relayed} (L{pymta.queue.checkpoint}).

The requests come from the message's C{dsn/N/ID}
(L{pymta.queue.dsnfile}), found beside its C{mess/N/ID}; a message
without one (or with one that cannot be read: logged) sends nothing extra.
"""

from __future__ import annotations

from twisted.logger import Logger

from pymta.dsn.params import MessageDsn, mail_parameters, rcpt_parameters
from pymta.queue.dsnfile import DsnFile, dsn_path_for_message, read_dsn_path
from pymta.queue.envelope import EnvelopeError

__all__ = ["DsnFile", "requests_for", "mail_suffix", "rcpt_suffix"]

log = Logger()


def requests_for(message_path: str) -> DsnFile | None:
    """The DSN data of the message stored at C{message_path} (C{QUEUE/mess/N/ID}), or None."""
    path = dsn_path_for_message(message_path)
    try:
        return read_dsn_path(path)
    except (OSError, EnvelopeError) as e:
        log.warn("cannot read {path}: {error}; DSN requests not passed on", path=path, error=e)
        return None


def mail_suffix(requests: DsnFile | None, extensions: set[bytes]) -> bytes:
    """What MAIL FROM gets added for this server (C{b""} without DSN or requests)."""
    if requests is None or b"DSN" not in extensions:
        return b""
    return mail_parameters(MessageDsn(requests.ret, requests.envid)).encode("ascii")


def rcpt_suffix(requests: DsnFile | None, recipient: str, extensions: set[bytes]) -> bytes:
    """What RCPT TO for C{recipient} (as routed) gets added for this server."""
    if requests is None or b"DSN" not in extensions:
        return b""
    return rcpt_parameters(requests.request(recipient)).encode("ascii")
