"""
Verdicts on the sender of mail we receive: SPF (RFC 7208) for the MAIL
FROM and HELO identities, DKIM (RFC 6376) signatures and DMARC (RFC 7489)
alignment with the From domain's policy, reported in an RFC 8601
C{Authentication-Results:} header field.

- L{pymta.senderauth.settings}: C{control/senderauth}, which turns the
  checks and the two optional refusals on;
- L{pymta.senderauth.lookups}: the DNS questions of one check, asked
  from a worker thread with a deadline;
- L{pymta.senderauth.spfcheck}, L{pymta.senderauth.dkimcheck},
  L{pymta.senderauth.dmarccheck}: each method on pyspf, dkimpy and
  authheaders, blocking (they run on worker threads);
- L{pymta.senderauth.header}: the header field's text, and which earlier
  fields carry our authserv-id;
- L{pymta.senderauth.verifier}: the asynchronous face the SMTP daemon
  uses (L{pymta.smtpd.senderauthstep}).
"""
