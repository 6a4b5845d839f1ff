# -*- test-case-name: tests.qmqpd.test_access -*-
"""
ROOT/etc/tcp.qmqp: who may hand mail to the QMQP server, in tcp.smtp's
format (L{pymta.smtpd.access}).  As with qmail-qmqpd behind tcpserver,
only listed clients get in: without the file nobody does, and a client no
line matches is refused (pymta adds the default rule C{:deny} at the end;
the file may allow everyone with its own C{:allow} line).

The file is read again at the next connection after it changes (its
mtime, size or inode), so no reload is needed; a file that does not parse
is logged and the rules read before it stay (nobody, if there were none).
"""

from __future__ import annotations

import os

from twisted.logger import Logger

from pymta.smtpd.access import AccessRule, AccessRules, TcpRulesError

__all__ = ["QMQPRules", "qmqp_rules_path", "with_default_deny", "DENY_ALL", "DEFAULT_DENY"]

log = Logger(namespace="pymta.qmqpd")

#: the default rule pymta adds (line 0: no line of the file)
DEFAULT_DENY = AccessRule("", False, (), 0)
#: the rules without a file: nobody is let in
DENY_ALL = AccessRules({"": DEFAULT_DENY}, "tcp.qmqp")


def qmqp_rules_path(root: str) -> str:
    """C{ROOT/etc/tcp.qmqp}."""
    return os.path.join(root, "etc", "tcp.qmqp")


def with_default_deny(text: str, path: str) -> AccessRules:
    """The file's rules, with C{:deny} as the default rule unless the file has its own."""
    rules = AccessRules.parse(text, path)
    if "" not in rules.rules:
        rules.rules[""] = DEFAULT_DENY
    return rules


class QMQPRules:
    """The current rules of C{path}; see the module's description."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._rules = DENY_ALL

    def current(self) -> AccessRules:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._rules = None, DENY_ALL
            return DENY_ALL
        except OSError as e:
            log.error("qmqpd: {path}: {error}; keeping the rules read before", path=self.path, error=e.strerror)
            return self._rules
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
                    self._rules = with_default_deny(f.read(), self.path)
            except (TcpRulesError, OSError) as e:
                log.error("qmqpd: keeping the rules read before: {path}: {error}", path=self.path, error=str(e))
        return self._rules
