# twistd -ny /etc/pymta/pop3d.tac  -- the POP3 server (pymta-pop3d)
# Environment: PYMTA_ROOT, PYMTA_POP3 (default tcp:110).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from pymta.pop3d import tap  # noqa: E402

application = _common.application("pymta-pop3d")
_common.attach(application, tap, ["--root", _common.root(), "--listen", _common.endpoint("PYMTA_POP3", "tcp:110")])
