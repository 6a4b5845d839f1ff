"""
qmail's C{QMAILQUEUE} hook (docs/dotqmail.md, 'Filtering with QMAILQUEUE'):
when the variable names a program, smtpd (with its QMTP and QMQP servers)
and C{pymta inject} run it instead of handing the message to the queue.
The program gets qmail-queue's interface: the message on descriptor 0,
the envelope on descriptor 1 (C{F} sender NUL, C{T} recipient NUL ...,
NUL), qmail-queue's exit codes, and exit 82 with a reply of its own on
descriptor 6.  It passes a message on by running C{pymta queue} (or
C{qmailbin/qmail-queue}) itself, so a qmail-scanner or simscan style
filter works unchanged.

- L{pymta.qmailqueue.program}: which program runs, with which
  environment and time bound;
- L{pymta.qmailqueue.outcome}: what its end means (a receipt or a
  L{pymta.queue.errors.QueueFailure});
- L{pymta.qmailqueue.spawned}: the L{pymta.interfaces.MessageSink} of the
  daemons, a child process on the reactor;
- L{pymta.qmailqueue.blocking}: the same for C{pymta inject}, blocking.
"""
