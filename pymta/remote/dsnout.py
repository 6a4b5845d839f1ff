# -*- test-case-name: tests.remote.test_dsnout -*-
"""
Passing a message's DSN requests on (RFC 3461 section 5.2): when the next
server offers C{DSN} in its EHLO reply, MAIL carries C{RET}/C{ENVID} and
each RCPT its recipient's C{NOTIFY}/C{ORCPT}, as the client asked us; the
server then reports on those recipients itself.  A server without C{DSN}
gets plain commands, and a success of a recipient that asked for one is
reported by pymta-send as C{relayed} (L{pymta.queue.checkpoint}).

The requests come with the job (L{pymta.interfaces.DeliveryJob.dsn}, what
the message's C{dsn/N/ID} holds); a message without any sends nothing
extra.  A recipient of such a message without a kept ORCPT (none was
given, or one naming the recipient itself, which is not stored) gets
C{ORCPT=rfc822;}I{recipient} (RFC 3461 section 4.2 lets a relay add the
address it received): the routed address, which is the received one for
every remote recipient but one rewritten by C{control/percenthack} (or
completed with C{control/envnoathost}).
"""

from __future__ import annotations

from dataclasses import replace

from pymta.dsn.params import MessageDsn, mail_parameters, rcpt_parameters, xtext_encode
from pymta.dsn.stored import DsnFile

__all__ = ["DsnFile", "mail_suffix", "rcpt_suffix"]


def mail_suffix(requests: DsnFile | None, extensions: set[bytes]) -> bytes:
    """What MAIL FROM gets added for this server (C{b""} without DSN or requests)."""
    if requests is None or b"DSN" not in extensions:
        return b""
    return mail_parameters(MessageDsn(requests.ret, requests.envid)).encode("ascii")


def rcpt_suffix(requests: DsnFile | None, recipient: str, extensions: set[bytes]) -> bytes:
    """What RCPT TO for C{recipient} (as routed) gets added for this server."""
    if requests is None or b"DSN" not in extensions:
        return b""
    request = requests.request(recipient)
    if request.orcpt is None:
        request = replace(request, orcpt="rfc822;" + xtext_encode(recipient))
    return rcpt_parameters(request).encode("ascii")
