"""
pymta's QMTP server (qmail-qmtpd): the C{--qmtp ENDPOINT} listeners of
C{twistd pymta-smtpd} and C{twistd pymta}.

Modules: L{envelope} (the envelope rules, pure), L{protocol} (one
connection: netstrings in, one reply netstring per recipient out),
L{incoming} (one message: its spool and its commit) and
L{service} (the listeners, added to the SMTP service so they share its
access rules, connection limits and reloads).  The wire format and the
choices where pymta differs from qmail-qmtpd are in docs/internals.md
('QMTP').
"""
