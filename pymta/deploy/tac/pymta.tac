# twistd -ny /etc/pymta/pymta.tac  -- smtpd + send + pop3d in one process
# Environment: PYMTA_ROOT, PYMTA_SMTP (default tcp:25), PYMTA_SUBMISSION (tcp:587),
# PYMTA_POP3 (tcp:110); an empty value disables that listener.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from pymta import tap  # noqa: E402

application = _common.application("pymta")
argv = ["--root", _common.root()]
for option, variable, default in (("--smtp", "PYMTA_SMTP", "tcp:25"), ("--submission", "PYMTA_SUBMISSION", "tcp:587"),
                                  ("--pop3", "PYMTA_POP3", "tcp:110")):
    if _common.endpoint(variable, default):  # empty: no such listener
        argv += [option, _common.endpoint(variable, default)]
_common.attach(application, tap, argv)
