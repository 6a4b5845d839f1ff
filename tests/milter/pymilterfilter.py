"""
A real milter for integration tests, written with pymilter (Debian's
python3-milter, over Sendmail's libmilter).  Run it with Debian's Python
(tests.packages.ensure_debian_python_module("Milter", "python3-milter")),
not the venv's::

    /usr/bin/python3 tests/milter/pymilterfilter.py --socket unix:/tmp/x/f.sock --seen /tmp/x/seen.jsonl [ACTIONS]

It accepts everything unless told otherwise; ACTIONS combine:

  --reject-rcpt ADDR        refuse that recipient (550 5.7.1 ... with a custom reply)
  --reply-mail "CODE X.Y.Z TEXT"   answer MAIL with this reply (4xx or 5xx)
  --add-rcpt ADDR / --del-rcpt ADDR / --chgfrom ADDR
  --add-header "Name: value" / --change-header "Name: value" (the first of that name; empty value deletes)
  --insert-header "Name: value" (at the top)
  --replace-body TEXT       (CRLF line ends are the caller's business)
  --quarantine REASON
  --tempfail-eom            answer the end of message with 451 4.7.1
  --discard-eom
  --silent-at STAGE         never answer at STAGE (connect helo mail rcpt data header eoh body eom)
  --noreply-headers         negotiate SMFIP_NR_HDR (libmilter's @noreply on header)

Stop it with SIGKILL (libmilter takes SIGTERM as "finish the sessions first").
--seen FILE gets one JSON line per callback (stage, arguments, the macros the
MTA sent) so a test can assert what the filter saw.  Not part of pymta.
"""

import argparse
import json
import sys
import time

import Milter

MACROS = ("j", "{daemon_name}", "{client_addr}", "{client_name}", "i", "{auth_authen}", "{mail_addr}",
          "{rcpt_addr}")


def build(options):
    def seen(milter, stage, *args):
        macros = {}
        for name in MACROS:
            value = milter.getsymval(name)
            if value is not None:
                macros[name] = value
        with open(options.seen, "a") as f:
            f.write(json.dumps({"stage": stage, "args": [a if isinstance(a, str) else repr(a) for a in args],
                                "macros": macros}) + "\n")

    def stall(stage):
        if options.silent_at == stage:
            while True:
                time.sleep(3600)

    class Filter(Milter.Base):
        def connect(self, hostname, family, hostaddr):
            seen(self, "connect", hostname, str(hostaddr))
            stall("connect")
            return Milter.CONTINUE

        def hello(self, name):
            seen(self, "helo", name)
            stall("helo")
            return Milter.CONTINUE

        def envfrom(self, sender, *params):
            seen(self, "mail", sender, *params)
            stall("mail")
            if options.reply_mail:
                code, xcode, text = options.reply_mail.split(" ", 2)
                self.setreply(code, xcode, text)
                return Milter.TEMPFAIL if code.startswith("4") else Milter.REJECT
            return Milter.CONTINUE

        def envrcpt(self, recipient, *params):
            seen(self, "rcpt", recipient, *params)
            stall("rcpt")
            if options.reject_rcpt and recipient.strip("<>").lower() == options.reject_rcpt.lower():
                self.setreply("550", "5.7.1", "no mail for " + options.reject_rcpt)
                return Milter.REJECT
            return Milter.CONTINUE

        def data(self):
            seen(self, "data")
            stall("data")
            return Milter.CONTINUE

        def header(self, name, value):
            seen(self, "header", name, value)
            stall("header")
            return Milter.CONTINUE

        def eoh(self):
            seen(self, "eoh")
            stall("eoh")
            return Milter.CONTINUE

        def body(self, chunk):
            seen(self, "body", chunk.decode("utf-8", "replace"))
            stall("body")
            return Milter.CONTINUE

        def eom(self):
            seen(self, "eom")
            stall("eom")
            if options.tempfail_eom:
                self.setreply("451", "4.7.1", "try again later, says the filter")
                return Milter.TEMPFAIL
            if options.discard_eom:
                return Milter.DISCARD
            for header in options.add_header:
                name, _, value = header.partition(":")
                self.addheader(name, value.strip())
            for header in options.insert_header:
                name, _, value = header.partition(":")
                self.addheader(name, value.strip(), 0)
            for header in options.change_header:
                name, _, value = header.partition(":")
                self.chgheader(name, 1, value.strip())
            for address in options.add_rcpt:
                self.addrcpt("<%s>" % address)
            for address in options.del_rcpt:
                self.delrcpt("<%s>" % address)
            if options.chgfrom:
                self.chgfrom("<%s>" % options.chgfrom)
            if options.replace_body is not None:
                self.replacebody(options.replace_body.encode())
            if options.quarantine:
                self.quarantine(options.quarantine)
            return Milter.ACCEPT

        def abort(self):
            seen(self, "abort")
            return Milter.CONTINUE

        def close(self):
            return Milter.CONTINUE

    if options.noreply_headers:
        Filter.header = Milter.noreply(Filter.header)
    return Filter


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--seen", required=True)
    parser.add_argument("--reject-rcpt")
    parser.add_argument("--reply-mail")
    parser.add_argument("--add-rcpt", action="append", default=[])
    parser.add_argument("--del-rcpt", action="append", default=[])
    parser.add_argument("--chgfrom")
    parser.add_argument("--add-header", action="append", default=[])
    parser.add_argument("--insert-header", action="append", default=[])
    parser.add_argument("--change-header", action="append", default=[])
    parser.add_argument("--replace-body")
    parser.add_argument("--quarantine")
    parser.add_argument("--tempfail-eom", action="store_true")
    parser.add_argument("--discard-eom", action="store_true")
    parser.add_argument("--silent-at")
    parser.add_argument("--noreply-headers", action="store_true")
    options = parser.parse_args(argv)
    Milter.factory = build(options)
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.DELRCPT | Milter.CHGBODY
                     | Milter.QUARANTINE | Milter.CHGFROM)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Milter.runmilter("pymta-test", options.socket, 600)


if __name__ == "__main__":
    main(sys.argv[1:])
