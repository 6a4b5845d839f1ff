"""run_checks: every checker over one context, duplicates dropped, failing checkers contained."""

from __future__ import annotations

import os
from typing import Iterator

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck import CHECKERS, DAEMON_CHECKERS, CheckContext, Problem, run_checks
from pymta.configcheck.dotqmails import check_dotqmail_files
from pymta.configcheck.ownership import check_queue_owner
from pymta.configcheck.problem import ERROR, WARNING
from tests.configcheck.helpers import init_root, located, write


class RunChecksTests(SynchronousTestCase):
    def test_fresh_root_is_clean(self) -> None:
        self.assertEqual(run_checks(init_root(self, "alice:pw", "bob")), [])

    def test_daemons_leave_the_queue_owner_to_privileges(self) -> None:
        # and the walk through every home to pymta check
        self.assertEqual(set(CHECKERS) - set(DAEMON_CHECKERS), {check_queue_owner, check_dotqmail_files})

    def test_one_complaint_per_line(self) -> None:
        """load_controls and the smtproutes check both object to line 1: reported once."""
        root = init_root(self)
        write(root, "control/smtproutes", "no colon\nb.example:relay:99999\n")
        problems = run_checks(root)
        self.assertEqual(located(root, problems), [("control/smtproutes", 1, ERROR), ("control/smtproutes", 2, ERROR)])

    def test_failing_checkers_do_not_raise(self) -> None:
        root = init_root(self)

        def unreadable(ctx: CheckContext) -> Iterator[Problem]:
            raise PermissionError(13, "Permission denied", os.path.join(ctx.root, "secret"))

        def buggy(ctx: CheckContext) -> Iterator[Problem]:
            yield Problem(ctx.root, 0, WARNING, "first")
            raise KeyError("oops")

        problems = run_checks(root, checkers=(unreadable, buggy))
        self.assertEqual([(os.path.relpath(p.path, root), p.severity) for p in problems],
                         [("secret", ERROR), (".", WARNING)])
        self.assertEqual(problems[0].text, "cannot check it: Permission denied")
        self.assertIn("buggy could not run: KeyError('oops')", problems[1].text)
