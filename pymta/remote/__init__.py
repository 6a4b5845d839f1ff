"""
Remote delivery: pymta's qmail-remote.

- L{pymta.remote.channel.RemoteChannel}: the Channel pymta-send uses for
  remote recipients;
- L{pymta.remote.routes}: smtproutes, IP literals, MX targets, self check;
- L{pymta.remote.client}: the SMTP client protocol (one connection);
- L{pymta.remote.datastream}: DATA encoding (CRLF, dot-stuffing);
- L{pymta.remote.tlspolicy}: opportunistic STARTTLS and control/tlsdestinations;
- L{pymta.remote.mtasts}: MTA-STS (RFC 8461) policies of recipient domains
  (mtastspolicy, mtastsfetch, mtastscache, mtastsapply, mtastssettings);
- L{pymta.remote.tlsprecedence}: DANE per MX host, MTA-STS for the other hosts;
- L{pymta.remote.tcpto}: dead-host memory (C{pymta ctl tcpok} calls C{clear});
- L{pymta.remote.localaddrs}: this machine's addresses.

DNS (MX and address lookups on a thread pool) is the shared L{pymta.dns},
which smtpd's DNSBL checks use too.
"""
