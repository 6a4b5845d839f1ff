"""
The units as C{pymta deploy} writes them, checked by systemd's own analyzer
(where C{systemd-analyze} exists): C{verify} is clean, and C{security
--offline} rates the unit that never needs root at most 3.0 and the others
no worse than the figures docs/install.md records.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from pymta.deploy.files import UNIT_FILES
from tests.deploy.units import write_deployment

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the requirement for a unit that never needs root
NEVER_ROOT_LIMIT = 3.0
#: measured with systemd 252 (docs/install.md); a systemd-analyze that rates
#: a unit higher means re-measuring and updating the docs
RECORDED = {"pymta-smtpd.service": 1.4, "pymta-send.service": 2.6,
            "pymta-pop3d.service": 2.6, "pymta.service": 2.6}
_OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+\.\d)")


def analyze(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    if SYSTEMD_ANALYZE is None:
        raise SkipTest("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run([SYSTEMD_ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"})


class SystemdAnalyzeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.units = write_deployment(self.base)
        self.unit_dir = os.path.join(self.base, "units")

    def exposure(self, name: str, threshold: float | None = None) -> tuple[float, int]:
        args = ["security", "--offline=true", "--no-pager"]
        if threshold is not None:
            args.append(f"--threshold={round(threshold * 10)}")  # in tenths
        done = analyze(*args, name, cwd=self.unit_dir)
        found = _OVERALL.search(done.stdout + done.stderr)
        self.assertIsNotNone(found, done.stdout + done.stderr)
        assert found is not None
        self.assertEqual(found.group(1), name)
        return float(found.group(2)), done.returncode

    def test_verify_is_clean(self) -> None:
        done = analyze("verify", *[self.units[name] for name in UNIT_FILES], cwd=self.unit_dir)
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "", ""))

    def test_verify_notices_a_missing_twistd(self) -> None:
        """verify checks ExecStart's program: the clean result above means the real twistd was found."""
        path = self.units["pymta-send.service"]
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"ExecStart=\S+", "ExecStart=/nonexistent/twistd", text))
        done = analyze("verify", path, cwd=self.unit_dir)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("/nonexistent/twistd", done.stderr)

    def test_smtpd_exposure_at_most_3(self) -> None:
        figure, status = self.exposure("pymta-smtpd.service", threshold=NEVER_ROOT_LIMIT)
        self.assertLessEqual(figure, NEVER_ROOT_LIMIT)
        self.assertEqual(status, 0)
        self.assertLessEqual(figure, RECORDED["pymta-smtpd.service"])

    def test_root_units_no_worse_than_recorded(self) -> None:
        for name in ("pymta-send.service", "pymta-pop3d.service", "pymta.service"):
            figure, _ = self.exposure(name)
            self.assertLessEqual(figure, RECORDED[name], name)

    def test_figures_in_install_docs(self) -> None:
        with open(os.path.join(REPO, "docs", "install.md")) as f:
            docs = f.read()
        for name, figure in RECORDED.items():
            self.assertRegex(docs, rf"\| `{re.escape(name)}` \| {figure} \|", name)
