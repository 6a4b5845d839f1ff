"""
serialmail: handing over the mail a Maildir holds for a site that connects
now and then (C{pymta maildirsmtp}).  See docs/serialmail.md.

- L{pymta.serialmail.held}: which files are held, and their envelopes.
- L{pymta.serialmail.courier}: the seam a protocol plugs into.
- L{pymta.serialmail.smtpcourier}: the SMTP courier.
- L{pymta.serialmail.handover}: the loop and what becomes of each file.
- L{pymta.serialmail.bounce}: failure notices for refused messages.
- L{pymta.serialmail.run}: one run from the command line, with the lock.
"""
