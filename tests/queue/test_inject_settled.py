"""
L{InjectClientSink}: the outcome is known before C{finish()} is called
(the inject socket refused the connection, or dropped it, while the message
was still being written, as happens when pymta-send dies during a long
DATA).  C{finish()} must still return a Deferred that fails with the
temporary refusal, so smtpd answers C{451 qq trouble making network
connection} instead of an internal error.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from pymta.queue.errors import QueueRefused
from pymta.queue.injectclient import InjectClientSink


class FinishAfterFailureTests(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pymta-injs-")
        self.addCleanup(shutil.rmtree, self.root, True)

    @defer.inlineCallbacks
    def test_finish_after_the_connection_was_refused(self):
        sink = InjectClientSink(reactor, os.path.join(self.root, "nothing.sock"))
        writer = sink.open_message("a@b", ["c@d"], origin="from network")
        writer.write(b"Subject: x\n\nbody\n")
        # let the refused connection be reported before the message ends
        yield task.deferLater(reactor, 0.2, lambda: None)
        finished = writer.finish()
        self.assertIsInstance(finished, defer.Deferred)
        error = yield self.assertFailure(finished, QueueRefused)
        self.assertFalse(error.permanent)
        self.assertEqual(error.text, "qq trouble making network connection (#4.3.0)")
