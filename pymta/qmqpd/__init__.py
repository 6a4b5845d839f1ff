"""
pymta's QMQP server (qmail-qmqpd): the C{--qmqp ENDPOINT} listeners of
C{twistd pymta-smtpd} and C{twistd pymta}, which take mail from trusted
clients, usually null clients (L{pymta.qmqpclient}).

Modules: L{envelope} (the envelope rules, pure), L{access} (ROOT/etc/tcp.qmqp,
read again when it changes; no file: nobody is let in), L{protocol} (one
connection: one message, one reply) and L{service} (the listeners, added to
the SMTP service so they share its queue sink, connection limits and
end-of-data steps).  The message is spooled and committed by QMTP's pieces
(L{pymta.qmtpd.incoming}); docs/qmqp.md is the user's page.
"""
