"""The macros of each filter stage (pure)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from pymta.smtpd.miltermacros import (
    ClientFacts, TLSFacts, connect_macros, helo_macros, mail_macros, new_transaction_id, rcpt_macros, tls_facts,
)


class Macros(SynchronousTestCase):
    def test_connect_with_a_client_name(self) -> None:
        macros = connect_macros(ClientFacts("mx.example", "2001:db8::1", 2525, "client.example", "2001:db8::2"))
        self.assertEqual(macros["_"], "client.example [2001:db8::1]")
        self.assertEqual((macros["{client_name}"], macros["{client_ptr}"]), ("client.example", "client.example"))
        self.assertEqual((macros["{if_addr}"], macros["{if_name}"]), ("2001:db8::2", "mx.example"))

    def test_tls(self) -> None:
        self.assertEqual(helo_macros(None), {})
        macros = helo_macros(TLSFacts("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, "/CN=client", "/CN=ca"))
        self.assertEqual(macros, {"{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384",
                                  "{cipher_bits}": "256", "{cert_subject}": "/CN=client", "{cert_issuer}": "/CN=ca"})
        self.assertNotIn("{cert_subject}", helo_macros(TLSFacts("TLSv1.2", "X", 128)))

    def test_auth(self) -> None:
        macros = mail_macros("1.2", "a@b.example", "PLAIN", "alice")
        self.assertEqual((macros["{auth_type}"], macros["{auth_authen}"]), ("PLAIN", "alice"))
        self.assertEqual(macros["i"], "1.2")

    def test_rcpt_mailer(self) -> None:
        self.assertEqual(rcpt_macros("1", "x@Local.example", frozenset({"local.example"}))["{rcpt_mailer}"], "local")
        self.assertEqual(rcpt_macros("1", "postmaster", frozenset())["{rcpt_host}"], "")

    def test_transaction_ids(self) -> None:
        first, second = new_transaction_id(), new_transaction_id()
        self.assertNotEqual(first, second)
        self.assertTrue(first.startswith(f"{os.getpid():X}."))

    def test_tls_facts_of_a_plain_transport(self) -> None:
        self.assertIsNone(tls_facts(object()))

    def test_tls_facts_of_an_openssl_connection(self) -> None:
        class Name:
            def get_components(self):  # type: ignore[no-untyped-def]
                return [(b"CN", b"client.example")]

        class Cert:
            def get_subject(self):  # type: ignore[no-untyped-def]
                return Name()

            get_issuer = get_subject

        class Connection:
            def get_protocol_version_name(self) -> str:
                return "TLSv1.3"

            def get_cipher_name(self) -> str:
                return "TLS_AES_128_GCM_SHA256"

            def get_cipher_bits(self) -> int:
                return 128

            def get_peer_certificate(self) -> Cert:
                return Cert()

        class Transport:
            def getHandle(self) -> Connection:
                return Connection()

        self.assertEqual(tls_facts(Transport()),
                         TLSFacts("TLSv1.3", "TLS_AES_128_GCM_SHA256", 128, "/CN=client.example", "/CN=client.example"))
