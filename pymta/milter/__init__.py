"""
The MTA side of the Sendmail milter protocol (version 6): content filters
such as rspamd, spamass-milter, clamav-milter and OpenDKIM asked by
pymta-smtpd at each stage of an SMTP session.  L{pymta.milter.api} is the
seam between the protocol client and smtpd.
"""
