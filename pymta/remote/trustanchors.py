# -*- test-case-name: tests.remote.test_trustanchors -*-
"""
Trust anchors for verified client TLS: a PEM file of CA certificates named
in control/tlsdestinations (C{domain:/etc/ca.pem}) or in an smtproutes
option (C{ca=/etc/ca.pem}), or the system's CAs.

L{check_ca_file} is what the control-file checks run (a ValueError saying
what is wrong); L{verified_creator} builds the connection creator that
checks the certificate chain against the anchors and the server's name
(or IP address) with service-identity.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import ssl

__all__ = ["check_ca_file", "pem_blocks", "verified_creator"]


def pem_blocks(data: bytes) -> list[bytes]:
    """Each C{BEGIN CERTIFICATE} ... C{END CERTIFICATE} block of C{data}."""
    end = b"-----END CERTIFICATE-----"
    blocks = []
    for part in data.split(end)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start != -1:
            blocks.append(part[start:] + end + b"\n")
    return blocks


def check_ca_file(path: str) -> None:
    """ValueError unless C{path} is an absolute path to a readable file of PEM certificates."""
    if not path.startswith("/"):
        raise ValueError(f"the CA file must be an absolute path, not {path!r}")
    try:
        with open(path, "rb") as f:
            blocks = pem_blocks(f.read())
    except OSError as e:
        raise ValueError(f"unable to read the CA file {path}: {e.strerror or e}") from None
    try:
        for block in blocks:
            ssl.Certificate.loadPEM(block)
    except Exception as e:  # OpenSSL's errors are not ValueErrors
        raise ValueError(f"unusable certificate in the CA file {path}: {e}") from None
    if not blocks:
        raise ValueError(f"no PEM certificate in the CA file {path}")


def verified_creator(hostname: str, ca_file: str | None) -> Any:
    """
    Client TLS that verifies the server against C{ca_file} (the system's
    CAs when None) and C{hostname} (brackets of an address literal
    dropped); OSError or ValueError when the file cannot be used.
    """
    if ca_file:
        with open(ca_file, "rb") as f:
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(block) for block in pem_blocks(f.read())])
    else:
        trust = ssl.platformTrust()
    return ssl.optionsForClientTLS(hostname.strip("[]"), trustRoot=trust)
