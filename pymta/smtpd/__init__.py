"""
pymta-smtpd: qmail-smtpd's behaviour with ESMTP, STARTTLS, submission AUTH,
tcpserver/tcprules access rules and rblsmtpd, as one Twisted service.

Modules: L{protocol} (the session), L{data} (the DATA state machine),
L{policy} (envelope rules), L{access} (tcp.smtp), L{dnsbl} (rblsmtpd),
L{auth} (SASL on twisted.cred), L{received} (the Received line),
L{rcptcheck} (opt-in RCPT check), L{context} (shared state, limits),
L{factory}, L{service} (C{build_smtpd_service}) and L{tap}
(C{twistd pymta-smtpd}); the content filters (control/milters) at each
stage: L{miltercommands}, L{milterstages}, L{miltermacros}, and at the
end of DATA L{milterstep} and L{milteredits}.

Decisions where qmail has no answer or pymta differs:

- A bare LF in DATA gets qmail's C{451 See https://cr.yp.to/docs/smtplf.html.}
  and the connection is closed (no normalisation): no smuggled message.
- A C{deny} rule closes the connection without a word (tcpserver's way).
  A missing ROOT/etc/tcp.smtp allows everybody (tcpserver -X); there is no
  compiled index, C{pymta tcprules} checks the text file.
- Limits answer C{421} instead of letting clients wait in the listen queue:
  C{concurrencyincoming} in total and C{control/concurrencyperip} per address
  (default: half of concurrencyincoming).
- EHLO advertises PIPELINING, 8BITMIME, SIZE, STARTTLS (certificate present,
  not yet TLS) and, on submission listeners, AUTH (after TLS unless allowed
  in plaintext).  Submission requires AUTH (or RELAYCLIENT) before MAIL.
- Recipients beyond 1000 per message get C{452}; command lines over 4096
  bytes C{500}; a data line over 128 KiB ends the session.
- Extra control files: C{rbls} (DNSBL zones), C{rcptcheck} (presence turns
  the RCPT check on), C{concurrencyperip}.
"""
