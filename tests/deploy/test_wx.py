"""
Why the units leave C{MemoryDenyWriteExecute=} off: under a write-xor-execute
policy pyOpenSSL cannot make the callbacks every TLS handshake of Twisted's
uses (cffi's C{ffi.callback} needs writable and executable memory).

Checked with the kernel's own W^X switch, C{prctl(PR_SET_MDWE)} (Linux 6.3
and later), which refuses the same mappings as systemd's seccomp filter.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from pymta.deploy.files import UNIT_FILES, Settings, rendered

PROBE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("no-mdwe"); sys.exit(0)
from OpenSSL import SSL
context = SSL.Context(SSL.TLS_METHOD)
try:
    context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
except MemoryError:
    print("callback-refused")
else:
    print("callback-ok")
"""


class WriteXorExecuteTests(SynchronousTestCase):
    def test_units_match_what_tls_needs(self) -> None:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        outcome = done.stdout.strip()
        if outcome == "no-mdwe":
            raise SkipTest("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
        settings = Settings(twistd="/usr/bin/twistd", tac_dir="/etc/pymta", root="/var/pymta")
        with_wx_ban = [n for n in UNIT_FILES if "\nMemoryDenyWriteExecute=yes" in rendered(n, settings)]
        if outcome == "callback-refused":
            self.assertEqual(with_wx_ban, [], "TLS would fail in these units")
        else:
            self.assertEqual(outcome, "callback-ok")
