# -*- test-case-name: tests.test_listenbacklog -*-
"""
The listen queue of a listener, sized from its connection limit.

The kernel holds connections that have completed the handshake but are not
yet accepted in a listening socket's queue, whose length is the C{backlog}
given to C{listen()}.  Twisted listens with a backlog of 50 unless the
endpoint string says C{backlog=}; when many clients connect at once, a queue
shorter than the number of sessions the daemon accepts overflows, the kernel
drops the clients' handshakes and they try again only after a second or
more.  So a listener with a connection limit (control/concurrencyincoming
for SMTP, QMTP and QMQP; control/concurrencypop3 for POP3) listens with a
backlog of that limit, as Postfix sizes a service's queue to its process
limit.  Linux caps the value at C{net.core.somaxconn}.

The queue is never made shorter than Twisted's default
(L{listen_backlog}): pymta accepts the connections over its limit to refuse
them with a reply (C{421}), so a burst of them passes through the queue too,
and a small limit must not turn that burst into dropped handshakes.

L{with_backlog} is the pure step: it adds C{backlog=N} to an endpoint string
of a type that takes one (C{tcp:}, C{tcp6:}, C{ssl:}, C{unix:}, also behind
C{haproxy:}) unless the string sets the backlog itself, by name or by
position: an operator's explicit value wins.  Any other string (another
endpoint type, or one that cannot be read) is returned unchanged, for
Twisted to take or refuse as before.
"""

from __future__ import annotations

from pymta.proxylistener import PROXY_PREFIX

__all__ = ["with_backlog", "listen_backlog", "BACKLOG_POSITION", "DEFAULT_BACKLOG"]

#: Twisted's listen queue for an endpoint string without C{backlog=}
DEFAULT_BACKLOG = 50

#: for each endpoint type that takes a backlog: its position among the
#: positional arguments after the type (Twisted's parsers: tcp:PORT:INTERFACE:BACKLOG,
#: tcp6:PORT:BACKLOG, unix:ADDRESS:MODE:BACKLOG, ssl:PORT:KEY:CERT:METHOD:INTERFACE:BACKLOG)
BACKLOG_POSITION = {"tcp": 3, "tcp6": 2, "unix": 3, "ssl": 6}


def listen_backlog(connection_limit: int) -> int:
    """The listen queue of a listener that serves C{connection_limit} sessions: the limit, at least 50."""
    return max(connection_limit, DEFAULT_BACKLOG)


def with_backlog(description: str, backlog: int | None) -> str:
    """
    C{description} with C{:backlog=BACKLOG} appended when its endpoint type
    takes a backlog and it does not set one; unchanged when C{backlog} is
    None, and for any other endpoint string.
    """
    if backlog is None:
        return description
    if description.startswith(PROXY_PREFIX):
        return PROXY_PREFIX + with_backlog(description[len(PROXY_PREFIX) :], backlog)
    fields = _fields(description)
    if fields is None:
        return description
    position = BACKLOG_POSITION.get(fields[0][1].lower())
    if position is None or fields[0][0] is not None:
        return description
    positional = [value for name, value in fields[1:] if name is None]
    if len(positional) >= position or any(name == "backlog" for name, _ in fields[1:]):
        return description
    return f"{description}:backlog={backlog}"


def _fields(description: str) -> list[tuple[str | None, str]] | None:
    """
    The C{:}-separated fields of an endpoint string as Twisted reads them:
    C{(name, value)} for C{name=value}, C{(None, value)} for a positional
    field, backslash escapes undone; None for a string ending in a lone
    backslash, which Twisted cannot read.
    """
    fields: list[tuple[str | None, str]] = []
    name: str | None = None
    current = ""
    chars = iter(description)
    for c in chars:
        if c == "\\":
            escaped = next(chars, None)
            if escaped is None:
                return None
            current += escaped
        elif c == ":":
            fields.append((name, current))
            name, current = None, ""
        elif c == "=" and name is None:
            name, current = current, ""
        else:
            current += c
    fields.append((name, current))
    return fields
