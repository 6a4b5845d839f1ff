"""
A tiny SMTP conversation tool for the guide's examples (and for you):

    python3 smtpchat.py PORT 'EHLO me' 'MAIL FROM:<a@b>' 'RCPT TO:<c@d>' DATA 'Subject: x' ...

Connects to 127.0.0.1:PORT (or HOST:PORT), prints the server's replies
with C{< } and every line it sends with C{> }.  After a C{354} reply the
following arguments are the message, one line each, up to an argument
C{.}, which ends the data.  After C{STARTTLS} is answered with C{220} the
connection continues inside TLS (the certificate is not checked).  It
stops at the first reply that closes the connection, or after C{QUIT}.

C{--proxy CLIENT_IP} first sends the PROXY protocol line a proxy such as
HAProxy would send for a client at CLIENT_IP (for a C{haproxy:} listener).
"""

from __future__ import annotations

import socket
import ssl
import sys


def read_reply(stream) -> list[str]:
    lines = []
    while True:
        raw = stream.readline()
        if not raw:
            lines.append("(connection closed)")
            return lines
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def main(argv: list[str]) -> int:
    client = None
    if argv[:1] == ["--proxy"]:
        client, argv = argv[1], argv[2:]
    target, words = argv[0], argv[1:]
    host, _, port = target.rpartition(":")
    sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=30)
    stream = sock.makefile("rb")
    if client is not None:
        server = sock.getpeername()[0]
        family = "TCP6" if ":" in client else "TCP4"
        if family == "TCP6" and ":" not in server:
            server = "::ffff:" + server
        line = f"PROXY {family} {client} {server} 40000 {port}"
        print(">", line)
        sock.sendall(line.encode() + b"\r\n")

    def show(reply: list[str]) -> bool:
        for line in reply:
            print("<", line)
        return reply[-1] == "(connection closed)"

    if show(read_reply(stream)):
        return 0
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        print(">", word)
        sock.sendall(word.encode() + b"\r\n")
        reply = read_reply(stream)
        if show(reply):
            return 0
        code = reply[-1][:3]
        if code == "354":
            body = []
            while i < len(words) and words[i] != ".":
                body.append(words[i])
                i += 1
            i += 1
            for line in body:
                print(">", line)
            print("> .")
            sock.sendall("".join(line + "\r\n" for line in body).encode() + b".\r\n")
            if show(read_reply(stream)):
                return 0
        elif word.upper() == "STARTTLS" and code == "220":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host or "localhost")
            stream = sock.makefile("rb")
        elif word.upper() == "QUIT":
            return 0
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
