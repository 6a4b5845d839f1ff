"""A twisted.cred checker wrapper that counts the password checks it is asked for (for the limiter tests)."""

from __future__ import annotations

from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from zope.interface import implementer


@implementer(ICredentialsChecker)
class CountingChecker:
    """
    Passes every check to C{inner}; C{calls} counts them, C{running} and
    C{most_running} follow how many run at once.  With C{hold} set, checks
    wait until L{release} (to keep them in flight); like a check in a
    thread, a held check cannot be stopped: cancelled, it fails with
    CancelledError only when released.
    """

    def __init__(self, inner: ICredentialsChecker, hold: bool = False) -> None:
        self.inner = inner
        self.credentialInterfaces = inner.credentialInterfaces
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.hold = hold
        self._held: list[tuple[defer.Deferred, object]] = []

    def requestAvatarId(self, credentials: object) -> defer.Deferred:
        self.calls += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        if self.hold:

            def unstoppable(held: defer.Deferred) -> None:
                held.pause()

            gate: defer.Deferred = defer.Deferred(unstoppable)
            self._held.append((gate, credentials))
            d = gate.addCallback(lambda creds: self.inner.requestAvatarId(creds))
        else:
            d = defer.maybeDeferred(self.inner.requestAvatarId, credentials)
        return d.addBoth(self._ended)

    def _ended(self, result: object) -> object:
        self.running -= 1
        return result

    def release(self) -> None:
        held, self._held = self._held, []
        for gate, credentials in held:
            if gate.called:  # cancelled: its work "ends" now
                gate.unpause()
            else:
                gate.callback(credentials)

    def __getattr__(self, name: str) -> object:
        """Anything else (C{lookup} of a passwd-file checker) from the wrapped checker."""
        return getattr(self.inner, name)
