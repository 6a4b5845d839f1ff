"""Control files through the daemons' parsers (which refuse the blanks that matter), unknown names, an open relay."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.cli.showctl import EXTRA_FILES
from pymta.configcheck.controlfiles import check_control_files, known_control_names, load_every_control
from pymta.configcheck.problem import ERROR, WARNING
from pymta.control import SPECS
from tests.configcheck.helpers import check, init_root, located, write


class LoadEveryControlTests(SynchronousTestCase):
    def test_every_broken_file_and_line(self) -> None:
        root = init_root(self)
        write(root, "control/databytes", "ten\n")
        write(root, "control/concurrencyremote", "-1\n")
        write(root, "control/badmailfrom", "a@b\nnul\0here\n")
        write(root, "control/virtualdomains", "ok.example:alice\nno colon here\nalso none\n")
        controls, problems = load_every_control(root)
        self.assertEqual(sorted(located(root, problems)), [
            ("control/badmailfrom", 2, ERROR),
            ("control/concurrencyremote", 1, ERROR),
            ("control/databytes", 1, ERROR),
            ("control/virtualdomains", 2, ERROR),
            ("control/virtualdomains", 3, ERROR),
        ])
        assert controls is not None
        # what is left is what the daemons would use from the good lines
        self.assertEqual(dict(controls.virtualdomains), {"ok.example": "alice"})
        self.assertEqual(controls.controldir, os.path.join(root, "control"))
        self.assertEqual(controls.me, "mx.example.test")

    def test_unreadable_copy_and_invalid_utf8(self) -> None:
        root = init_root(self)
        write(root, "control/locals", b"mx.example.test\n\xff\n")
        _, problems = load_every_control(root)
        self.assertEqual(located(root, problems), [("control/locals", 2, ERROR)])
        self.assertIn("UTF-8", problems[0].text)

    def test_without_a_temporary_directory_the_first_error(self) -> None:
        import tempfile

        root = init_root(self)
        write(root, "control/databytes", "ten\n")
        write(root, "control/queuelifetime", "long\n")

        def no_tmp(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", "/tmp")

        self.patch(tempfile, "TemporaryDirectory", no_tmp)
        controls, problems = load_every_control(root)
        self.assertIsNone(controls)
        self.assertEqual(located(root, problems), [("control/databytes", 1, ERROR)])

    def test_no_control_directory_at_all(self) -> None:
        controls, problems = load_every_control(os.path.abspath(self.mktemp()))
        self.assertEqual(problems, [])
        assert controls is not None
        self.assertIsNone(controls.rcpthosts)


class NameTests(SynchronousTestCase):
    def test_known_names_walk_specs_and_extra_files(self) -> None:
        self.assertEqual(known_control_names(), {s.name for s in SPECS} | set(EXTRA_FILES))

    def test_typo_of_an_absent_file_is_an_error(self) -> None:
        root = init_root(self)
        write(root, "control/smtproute", "example.com:relay.example\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/smtproute", 0, ERROR)])
        self.assertIn("did you mean smtproutes?", problems[0].text)

    def test_near_name_of_a_present_file_is_a_warning(self) -> None:
        root = init_root(self)
        write(root, "control/rcpthosts~", "old.example\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/rcpthosts~", 0, WARNING)])
        self.assertIn("did you mean rcpthosts?", problems[0].text)

    def test_unrelated_name_and_hidden_files(self) -> None:
        root = init_root(self)
        write(root, "control/README", "notes\n")
        write(root, "control/.rcpthosts.swp", "x")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/README", 0, WARNING)])
        self.assertNotIn("did you mean", problems[0].text)


class BlankTests(SynchronousTestCase):
    def test_leading_blank_in_a_list_never_matches(self) -> None:
        root = init_root(self)
        write(root, "control/rcpthosts", "mx.example.test\n other.example\n\t.third.example\n# comment\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/rcpthosts", 2, ERROR), ("control/rcpthosts", 3, ERROR)])
        self.assertEqual(problems[0].text, "blank at the start of ' other.example'")
        self.assertEqual(problems[1].text, "blank at the start of '\\t.third.example'")

    def test_trailing_blanks_are_harmless(self) -> None:
        root = init_root(self)
        write(root, "control/rcpthosts", "mx.example.test  \t\n")
        write(root, "control/databytes", " 1000 \n")
        self.assertEqual(check(root, check_control_files), [])

    def test_blanks_next_to_the_colon_of_a_table(self) -> None:
        """Either side of the colon: in a key it never matches, in a value it would be used (or refused)."""
        root = init_root(self)
        write(root, "control/virtualdomains", "a.example :alice\nb.example: bob\nc.example:carol\n")
        write(root, "control/smtproutes", "d.example: relay.example\ne.example :relay.example\n")
        problems = check(root, check_control_files)
        self.assertEqual(sorted(located(root, problems)), [
            ("control/smtproutes", 1, ERROR),
            ("control/smtproutes", 2, ERROR),
            ("control/virtualdomains", 1, ERROR),
            ("control/virtualdomains", 2, ERROR),
        ])

    def test_leading_blank_in_a_host_name_file(self) -> None:
        root = init_root(self)
        write(root, "control/me", " mx.example.test\n")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/me", 1, ERROR)])


class OpenRelayTests(SynchronousTestCase):
    def test_no_rcpthosts(self) -> None:
        root = init_root(self)
        os.unlink(os.path.join(root, "control", "rcpthosts"))
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/rcpthosts", 0, WARNING)])
        self.assertIn("OPEN RELAY", problems[0].text)

    def test_empty_rcpthosts_is_no_relay(self) -> None:
        root = init_root(self)
        write(root, "control/rcpthosts", "")
        self.assertEqual(check(root, check_control_files), [])

    def test_morercpthosts_cdb_is_not_used(self) -> None:
        root = init_root(self)
        write(root, "control/morercpthosts.cdb", b"\0\0")
        problems = check(root, check_control_files)
        self.assertEqual(located(root, problems), [("control/morercpthosts.cdb", 0, WARNING)])
