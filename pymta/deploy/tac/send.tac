# twistd -ny /etc/pymta/send.tac  -- the queue manager (pymta-send)
# Environment: PYMTA_ROOT.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from pymta.queue import tap  # noqa: E402

application = _common.application("pymta-send")
_common.attach(application, tap, ["--root", _common.root()])
