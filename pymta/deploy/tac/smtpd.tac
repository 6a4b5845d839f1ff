# twistd -ny /etc/pymta/smtpd.tac  -- the SMTP server (pymta-smtpd)
# Environment: PYMTA_ROOT, PYMTA_SMTP (default tcp:25), PYMTA_SUBMISSION (default tcp:587;
# empty disables submission).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from pymta.smtpd import tap  # noqa: E402

application = _common.application("pymta-smtpd")
argv = ["--root", _common.root(), "--listen", _common.endpoint("PYMTA_SMTP", "tcp:25")]
if _common.endpoint("PYMTA_SUBMISSION", "tcp:587"):
    argv += ["--submission", _common.endpoint("PYMTA_SUBMISSION", "tcp:587")]
_common.attach(application, tap, argv)
