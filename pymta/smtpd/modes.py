"""
The input modes of an SMTP session and the reply both the command and the
AUTH halves of L{pymta.smtpd.protocol.SMTPServerProtocol} give to a
command that is not available.
"""

__all__ = ["COMMAND", "DATA", "AUTH", "SKIP_LINE", "RBL", "CLOSED", "REPLY_UNIMPLEMENTED"]

COMMAND, DATA, AUTH, SKIP_LINE, RBL, CLOSED = "command", "data", "auth", "skip", "rbl", "closed"

REPLY_UNIMPLEMENTED = "502 unimplemented (#5.5.1)"
