"""pymta dkim keygen and records: the key file, the record printed, never overwriting, bad arguments."""

from __future__ import annotations

import base64
import io
import os
import stat

from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SynchronousTestCase

from pymta.cli import dkim as command
from pymta.dkim.keygen import dns_record, txt_strings
from pymta.dkim.keys import ED25519, RSA, read_key
from tests.configcheck.helpers import MAIL_IDS, init_root


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return command.main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


class KeygenTests(SynchronousTestCase):
    def test_rsa_and_ed25519(self) -> None:
        root = init_root(self)
        for kind, algorithm, tag in (("rsa", RSA, "k=rsa"), ("ed25519", ED25519, "k=ed25519")):
            code, out, err = run("keygen", "Example.com", f"s-{kind}", "--type", kind, "--root", root)
            self.assertEqual((code, err), (0, ""))
            path = os.path.join(root, "etc", "dkim", f"example.com.s-{kind}.key")
            st = os.stat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            self.assertEqual(st.st_uid, MAIL_IDS[0] if os.getuid() == 0 else os.getuid())
            with open(path, "rb") as f:
                found, private = read_key(f.read())
            self.assertEqual(found, algorithm)
            records = [line for line in out.splitlines() if not line.startswith("#")]
            self.assertEqual(len(records), 1)
            self.assertTrue(records[0].startswith(f's-{kind}._domainkey.example.com. IN TXT "v=DKIM1; {tag}; p='))
            self.assertIn(f"# example.com:s-{kind}:{path}", out)
            strings = [part for part in records[0].split('"')[1::2]]
            self.assertTrue(all(len(part) <= 255 for part in strings))
            public = "".join(strings).split("p=")[1]
            if kind == "rsa":
                key = serialization.load_der_public_key(base64.b64decode(public))
                self.assertEqual(key.key_size, 2048)  # type: ignore[union-attr]
                self.assertGreater(len(strings), 1)
            else:
                self.assertEqual(len(base64.b64decode(public)), 32)
            self.assertEqual(run("keygen", "example.com", f"s-{kind}", "--type", kind, "--root", root)[0], 1)
        with open(os.path.join(root, "control", "dkimkeys"), "w") as f:
            f.write(f"example.com:s-rsa:{root}/etc/dkim/example.com.s-rsa.key\n"
                    "example.com:s-ed25519:../etc/dkim/example.com.s-ed25519.key\n")
        code, out, err = run("records", "--root", root)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual([line.split(" IN ")[0] for line in out.splitlines()],
                         ["s-rsa._domainkey.example.com.", "s-ed25519._domainkey.example.com."])

    def test_bad_arguments(self) -> None:
        root = init_root(self)
        self.assertEqual(run("keygen", "bad..domain", "s1", "--root", root)[0], 100)
        self.assertEqual(run("keygen", "example.com", "s_1", "--root", root)[0], 100)
        self.assertEqual(run("keygen", "example.com", "s1", "--type", "dsa", "--root", root)[0], 100)
        self.assertEqual(run("frobnicate")[0], 100)
        self.assertFalse(os.path.exists(os.path.join(root, "etc", "dkim", "example.com.s1.key")))

    def test_a_key_directory_others_could_change_is_refused(self) -> None:
        root = init_root(self)
        keys = os.path.join(root, "etc", "dkim")
        os.makedirs(keys, exist_ok=True)
        os.chmod(keys, 0o777)
        code, out, err = run("keygen", "example.com", "s1", "--root", root)
        self.assertEqual((code, out), (1, ""))
        self.assertIn(f"{keys} is writable by others (mode 0777): chmod go-w: no key written", err)
        os.chmod(keys, 0o755)
        os.rename(keys, keys + ".real")
        os.symlink(keys + ".real", keys)  # a link where the directory should be
        code, _, err = run("keygen", "example.com", "s1", "--root", root)
        self.assertEqual(code, 1)
        self.assertIn(f"{keys} is not a directory (a symbolic link?)", err)
        os.unlink(keys)
        os.rename(keys + ".real", keys)
        if os.getuid() == 0:
            os.chown(keys, 4242, 0)
            code, _, err = run("keygen", "example.com", "s1", "--root", root)
            self.assertIn(f"{keys} is owned by uid 4242, neither root nor uid 0 who writes the key", err)
            os.chown(keys, 0, 0)
        self.assertEqual(os.listdir(keys), [])
        self.assertEqual(run("keygen", "example.com", "s1", "--root", root)[0], 0)

    def test_record_strings(self) -> None:
        self.assertEqual(txt_strings("a" * 600), ["a" * 255, "a" * 255, "a" * 90])
        self.assertEqual(dns_record("Example.com.", "s", "v=DKIM1; p=x"), 's._domainkey.example.com. IN TXT "v=DKIM1; p=x"')
