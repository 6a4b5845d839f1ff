# twistd -ny /etc/pymta/pymta.tac  -- smtpd + send + pop3d in one process
# Environment: PYMTA_ROOT, PYMTA_SMTP (default tcp:25), PYMTA_SUBMISSION (tcp:587),
# PYMTA_POP3 (tcp:110).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from pymta import tap  # noqa: E402

application = _common.application("pymta")
_common.attach(application, tap, [
    "--root", _common.root(),
    "--smtp", os.environ.get("PYMTA_SMTP", "tcp:25"),
    "--submission", os.environ.get("PYMTA_SUBMISSION", "tcp:587"),
    "--pop3", os.environ.get("PYMTA_POP3", "tcp:110"),
])
