"""
What C{pymta deploy} writes, shipped with the package as data files.

C{tac/} holds one C{.tac} file per service (C{send.tac}, C{smtpd.tac},
C{pop3d.tac}) and one for the all-in-one process (C{pymta.tac}), with
C{_common.py}, which they import from their own directory; C{tcp.smtp} is an
example of C{ROOT/etc/tcp.smtp}.  C{systemd/} holds the unit templates, whose
C{@NAME@} placeholders L{pymta.deploy.files} fills in.  L{pymta.deploy.writer}
writes files without overwriting an administrator's changes.
"""
