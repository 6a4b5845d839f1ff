"""
DKIM signing of outgoing mail (RFC 6376; ed25519-sha256 of RFC 8463).

- L{pymta.dkim.keys}: C{control/dkimkeys} (which key signs for which
  domain, with which selector) and the key files it names;
- L{pymta.dkim.signer}: the signature fields of one message (dkimpy);
- L{pymta.dkim.signing}: the signing work of a daemon (keys of the
  current configuration, signing off the reactor thread);
- L{pymta.dkim.localsigning}: the signing of locally injected messages at
  the inject socket of pymta-send;
- L{pymta.dkim.keygen}: new keys and their DNS records (C{pymta dkim keygen}).

smtpd signs the messages of trusted sessions through its end-of-data stage
(L{pymta.smtpd.dkimsignstep}).  docs/internals.md says where and why.
"""
