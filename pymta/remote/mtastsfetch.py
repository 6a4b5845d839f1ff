# -*- test-case-name: tests.remote.test_mtastsfetch -*-
"""
Fetching an MTA-STS policy: C{GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt}
with Twisted's C{Agent}, never blocking the reactor.

The rules of RFC 8461 section 3.3, and pymta's bounds:

  - the web server's certificate must be valid for C{mta-sts.DOMAIN}
    (the system's CAs, or the C{ca} file of control/mtasts);
  - only C{200} counts; a redirect is not followed (it is a failure);
  - the media type must be C{text/plain};
  - at most L{MAX_BODY} bytes (64 KiB): a longer body is dropped;
  - the whole fetch, connection included, takes at most C{timeout}
    seconds (L{FETCH_TIMEOUT} by default).

The host name is looked up with pymta's own resolver (L{pymta.dns},
so control/resolvers applies here as well), its addresses tried in turn.
Every failure is a L{FetchError} with a one-line reason.
"""

from __future__ import annotations

from typing import Any, Generator, cast

from service_identity import VerificationError
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone, ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from pymta.dns import DNSError, Resolver
from pymta.remote.reply import tls_failure_reason
from pymta.remote.trustanchors import verified_creator

__all__ = ["FetchError", "PolicyFetcher", "policy_url", "MAX_BODY", "FETCH_TIMEOUT", "HTTPS_PORT"]

MAX_BODY = 64 * 1024
FETCH_TIMEOUT = 20.0
HTTPS_PORT = 443
_MAX_ADDRESSES = 4


class FetchError(Exception):
    """No policy could be fetched; the message says why, in one line."""


def policy_url(domain: str) -> str:
    """Where C{domain}'s policy is published."""
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"


@implementer(IStreamClientEndpoint)
class _ResolvedEndpoint:
    """TCP to C{host}'s addresses as pymta's resolver gives them, tried in turn."""

    def __init__(self, reactor: Any, resolver: Resolver, host: str, port: int, timeout: float) -> None:
        self._reactor, self._resolver, self._host, self._port, self._timeout = reactor, resolver, host, port, timeout

    @defer.inlineCallbacks
    def connect(self, factory: Any) -> Generator[Deferred[Any], Any, Any]:
        try:
            addresses = yield self._resolver.addresses(self._host)
        except DNSError as e:
            raise ConnectError(string=f"no address for {self._host}: {e.reason}") from None
        problem = f"{self._host} has no address"
        for address in addresses[:_MAX_ADDRESSES]:
            endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
            endpoint = endpoint_class(self._reactor, address, self._port, timeout=self._timeout)
            try:
                return (yield endpoint.connect(factory))
            except ConnectError as e:
                problem = f"connect to {address} failed: {e}"
        raise ConnectError(string=problem)


@implementer(IAgentEndpointFactory)
class _PolicyHosts:
    """The Agent's endpoints: TLS verified for the URL's host, over L{_ResolvedEndpoint}."""

    def __init__(self, reactor: Any, resolver: Resolver, port: int, timeout: float, ca_file: str | None) -> None:
        self._reactor, self._resolver, self._port, self._timeout, self._ca_file = (
            reactor, resolver, port, timeout, ca_file)

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        tcp = _ResolvedEndpoint(self._reactor, self._resolver, host, self._port, self._timeout)
        return wrapClientTLS(verified_creator(host, self._ca_file), tcp)


class _BoundedBody(Protocol):
    """Collects a response body of at most C{limit} bytes into C{done}."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.too_long = False
        self.done: Deferred[bytes] = Deferred(lambda d: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()  # a response body's transport is one

    def dataReceived(self, data: bytes) -> None:
        if self.too_long:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.too_long = True
            self._stop()
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # Protocol's default
        if self.done.called:
            return
        if self.too_long:
            self.done.errback(FetchError(f"the policy is longer than {self.limit} bytes"))
        elif reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(FetchError(f"the policy's body was cut off: {_reason(reason)}"))


def _reason(failure: Failure) -> str:
    """One line for what went wrong in a fetch."""
    error = failure.value
    if isinstance(error, (ResponseNeverReceived, ResponseFailed)) and error.reasons:
        return _reason(error.reasons[0])
    if isinstance(error, FetchError):
        return str(error)
    if isinstance(error, defer.CancelledError) or isinstance(error, defer.TimeoutError):
        return "timed out"
    if isinstance(error, VerificationError):
        return f"the web server's certificate is not valid for its name ({error})"[:300]
    return tls_failure_reason(failure)


class PolicyFetcher:
    """
    Fetches policies (see the module docstring).

    @param reactor: IReactorTCP and IReactorTime.
    @param resolver: looks up C{mta-sts.DOMAIN}'s addresses.
    @param port: the web server's port (443; tests use another).
    """

    def __init__(self, reactor: Any, resolver: Resolver, port: int = HTTPS_PORT, timeout: float = FETCH_TIMEOUT,
                 max_body: int = MAX_BODY) -> None:
        self.reactor = reactor
        self.resolver = resolver
        self.port = port
        self.timeout = timeout
        self.max_body = max_body

    def fetch(self, domain: str, ca_file: str | None = None) -> "Deferred[bytes]":
        """The policy body of C{domain}; fails with L{FetchError}."""
        hosts = _PolicyHosts(self.reactor, self.resolver, self.port, self.timeout, ca_file)
        agent = Agent.usingEndpointFactory(self.reactor, hosts)
        try:
            d = agent.request(b"GET", policy_url(domain).encode("idna"))
        except (UnicodeError, ValueError) as e:
            return defer.fail(FetchError(f"no usable policy URL for {domain!r}: {e}"))
        except OSError as e:  # the CA file went away since it was checked
            return defer.fail(FetchError(f"unable to read the CA file: {e}"))
        d.addCallback(self._read)
        d.addTimeout(self.timeout, self.reactor)

        def failed(failure: Failure) -> Failure:
            return Failure(FetchError(_reason(failure)))

        return d.addErrback(failed)

    def _read(self, response: IResponse) -> "Deferred[bytes]":
        problem = self._problem(response)
        if problem is not None:
            drain = _BoundedBody(0)  # drops the connection at the body's first byte
            drain.done.addErrback(lambda _: None)
            response.deliverBody(drain)
            raise FetchError(problem)
        body = _BoundedBody(self.max_body)
        response.deliverBody(body)
        return body.done

    def _problem(self, response: IResponse) -> str | None:
        """Why C{response} cannot carry a policy (status, media type, length), or None."""
        if response.code != 200:
            what = "a redirect, which MTA-STS does not follow" if 300 <= response.code < 400 else "not 200"
            return f"HTTP status {response.code} ({what})"
        types = response.headers.getRawHeaders(b"content-type") or [b""]
        media = types[0].split(b";")[0].strip().lower()
        if media != b"text/plain":
            return f"media type {media.decode('latin-1')!r}, not text/plain"
        if isinstance(response.length, int) and response.length > self.max_body:
            return f"the policy is longer than {self.max_body} bytes"
        return None
