"""Problem records, messages turned into problems, and every_error over a parser that stops at the first."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.configcheck.problem import ERROR, WARNING, Problem, every_error, problem_from_message, service_account


class ProblemTests(SynchronousTestCase):
    def test_text_forms(self) -> None:
        self.assertEqual(str(Problem("/r/control/me", 3, ERROR, "bad")), "/r/control/me:3: error: bad")
        self.assertEqual(str(Problem("/r/control/me", 0, WARNING, "odd")), "/r/control/me: warning: odd")
        self.assertTrue(Problem("/p", 1, ERROR, "x").is_error)
        self.assertFalse(Problem("/p", 1, WARNING, "x").is_error)

    def test_from_message(self) -> None:
        self.assertEqual(problem_from_message("/r/users/assign:7: bad uid", "/r/users/assign"),
                         Problem("/r/users/assign", 7, ERROR, "bad uid"))
        self.assertEqual(problem_from_message("/r/users/assign: no final '.' line", "/r/users/assign", WARNING),
                         Problem("/r/users/assign", 0, WARNING, "no final '.' line"))
        # another file's name in the text is not taken for this file's line
        self.assertEqual(problem_from_message("/other:2: x", "/r/f"), Problem("/r/f", 0, ERROR, "/other:2: x"))


class LineError(ValueError):
    def __init__(self, lineno: int) -> None:
        super().__init__(f"line {lineno}")
        self.lineno = lineno


def parse_numbers(lines: list[str]) -> list[int]:
    """A parser that stops at its first bad line, as most do."""
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not line.strip().isdigit():
            raise LineError(lineno)
        out.append(int(line))
    return out


class EveryErrorTests(SynchronousTestCase):
    def test_every_bad_line(self) -> None:
        found = every_error(["1", "x", "2", "y", "z"], parse_numbers, (LineError,), lambda e: e.lineno)
        self.assertEqual([e.lineno for e in found], [2, 4, 5])

    def test_clean(self) -> None:
        self.assertEqual(every_error(["1", "", "2"], parse_numbers, (LineError,), lambda e: e.lineno), [])

    def test_an_error_without_a_line_ends_the_search(self) -> None:
        def whole_file(lines: list[str]) -> None:
            raise LineError(0)

        self.assertEqual(len(every_error(["a", "b"], whole_file, (LineError,), lambda e: e.lineno)), 1)

    def test_a_parser_that_repeats_itself_ends(self) -> None:
        def stubborn(lines: list[str]) -> None:
            raise LineError(1)

        self.assertEqual(len(every_error(["a", "b"], stubborn, (LineError,), lambda e: e.lineno)), 1)


class ServiceAccountTests(SynchronousTestCase):
    def test_not_root_without_a_queue_is_itself(self) -> None:
        if os.geteuid() == 0:
            raise self.skipTest("needs a non-root process")
        self.assertEqual(service_account(self.mktemp()), (os.geteuid(), os.getegid()))

    def test_the_queue_owner(self) -> None:
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "queue"))
        st = os.stat(os.path.join(root, "queue"))
        expected = None if st.st_uid == 0 else (st.st_uid, st.st_gid)
        self.assertEqual(service_account(root), expected)

    def test_root_becomes_the_queue_owner(self) -> None:
        if os.geteuid() != 0:
            raise self.skipTest("needs root")
        root = os.path.abspath(self.mktemp())
        self.assertIsNone(service_account(root))  # no queue
        os.makedirs(os.path.join(root, "queue"))
        self.assertIsNone(service_account(root))  # a queue owned by root
        os.chown(os.path.join(root, "queue"), 4242, 4343)
        self.assertEqual(service_account(root), (4242, 4343))

    def test_root_without_a_queue_becomes_the_owner_of_run(self) -> None:
        """A POP3-only root: the daemons run as the owner of run/, as pymta.privileges decides."""
        if os.geteuid() != 0:
            raise self.skipTest("needs root")
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "run"))
        self.assertIsNone(service_account(root))  # run/ owned by root
        os.chown(os.path.join(root, "run"), 4242, 4343)
        self.assertEqual(service_account(root), (4242, 4343))
