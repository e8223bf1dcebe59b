"""The OpenCode client's HTTP loop: one place where httpx is called and its errors are mapped.

``HttpCaller`` sends a request, retries what is safe to retry and turns every answer into
either a decoded body or an :class:`~mmthreads.errors.AgentCallFailed` subclass (the rules are
in ``mmthreads.adapters.opencode``).  ``open_stream`` opens an SSE response and hands out an
:class:`EventStream` whose chunks raise mapped errors too, so no httpx exception leaves the
adapter.
"""

from __future__ import annotations

import base64
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVar, cast

import httpx
import msgspec
import trio

from mmthreads.core.backoff import RetryPolicy, parse_retry_after
from mmthreads.errors import (
    AgentAuthError,
    AgentBadResponse,
    AgentCallFailed,
    AgentNotFound,
    AgentTimeout,
    AgentUnavailable,
    ConfigError,
)
from mmthreads.wire.opencode_rest import ErrorBody

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

__all__ = ["DEFAULT_OPENCODE_POLICY", "EventStream", "HttpCaller"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Retries of one call: 0.5 s, 1 s, 2 s, then give up.
DEFAULT_OPENCODE_POLICY: Final = RetryPolicy(
    initial_delay=0.5, factor=2.0, max_delay=8.0, max_attempts=3
)

#: Answers that say the server did not act on the request: always safe to repeat.
_NOT_ACTED: Final = frozenset({429, 502, 503, 504})
#: Seconds allowed for closing a stream on the way out (shielded from cancellation).
_CLOSE_TIMEOUT: Final = 2.0
#: Chunks already buffered that closing a stream may read through before it gives up.
_DRAIN_LIMIT: Final = 1000

#: What a 1.0-era server answers (500 ``UnknownError``) for a route it lacks when the web app it
#: proxies unknown routes to cannot be reached: Bun's fetch errors.  Such an answer means the
#: same as a 404, and repeating the call cannot help.
_PROXY_FAILURES: Final = (
    "Unable to connect. Is the computer able to access the url?",
    "Was there a typo in the url or port?",
)

_error_body: Final = msgspec.json.Decoder(ErrorBody)
_encoder: Final = msgspec.json.Encoder()


def _is_json(response: httpx.Response) -> bool:
    ctype: str = response.headers.get("content-type", "")
    return ctype.split(";")[0].strip().lower() == "application/json"


def _no_scrub(text: str) -> str:
    return text


def _transport_failure(
    exc: httpx.HTTPError, scrub: Callable[[str], str] = _no_scrub
) -> tuple[AgentCallFailed, bool]:
    """The error for an httpx exception, and whether the server may have acted on the request.

    Only the exception's class name and text are kept: httpx does not put headers in them, and
    the base URL carries no credentials.
    """
    name = type(exc).__name__
    text = scrub(str(exc)) or name
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return AgentTimeout(0, name, f"could not connect in time: {text}", True), False
    if isinstance(exc, httpx.TimeoutException):
        return AgentTimeout(0, name, f"no answer in time: {text}", True), True
    if isinstance(exc, httpx.ConnectError):
        return AgentUnavailable(0, name, f"could not connect: {text}", True), False
    if isinstance(exc, httpx.TransportError):
        return AgentUnavailable(0, name, f"connection failed: {text}", True), True
    # DecodingError, TooManyRedirects: repeating the call would not help.
    return AgentCallFailed(0, name, text, False), True


class EventStream:
    """An open SSE response: ``async for chunk in stream`` gives the raw bytes as they come.

    Raises:
        AgentUnavailable: The connection broke while reading (``AgentTimeout`` never: event
            streams have no read timeout; the consumer's watchdog decides what is too quiet).
    """

    def __init__(self, response: httpx.Response, scrub: Callable[[str], str] = _no_scrub) -> None:
        # httpx makes this an async generator; it is closed explicitly (``aclose``), not left
        # to the garbage collector.
        self._chunks = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
        self._scrub = scrub

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._chunks)
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, self._scrub)[0] from None

    async def aclose(self) -> None:
        """Stop reading (the response itself is closed by ``open_stream``).

        httpx reads through a chain of nested async generators; closing the outermost one
        leaves the inner ones suspended, and Trio warns when those are garbage collected.
        Resuming the chain inside a cancelled scope instead runs every layer into the
        cancellation, which unwinds and finishes them all.
        """
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                for _ in range(_DRAIN_LIMIT):
                    await anext(self._chunks)
            except (StopAsyncIteration, httpx.HTTPError):
                return
        await self._chunks.aclose()


class HttpCaller:
    """Sends requests to one OpenCode server; see ``mmthreads.adapters.opencode``.

    Args:
        base_url: The server; a ``user:password@`` in it becomes the basic auth.
        username: Basic-auth user.
        password: Basic-auth password; ``None`` or empty sends no auth.
        transport: An httpx transport to use instead of the network.
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for an answer (streams: no limit).
        policy: Retries for failures the server did not act on.

    Raises:
        ConfigError: ``base_url`` is not an http(s) URL.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str | None,
        transport: httpx.AsyncBaseTransport | None,
        connect_timeout: float,
        read_timeout: float,
        policy: RetryPolicy,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            raise ConfigError("the OpenCode URL is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"the OpenCode URL must be http(s)://host[:port], not {url.scheme}:")
        if url.username or url.password:
            username = url.username or username
            password = password or url.password
            url = url.copy_with(username=None, password=None)
        self.server = str(url).rstrip("/")
        self._secrets: tuple[str, ...] = ()
        auth: httpx.BasicAuth | None = None
        if password:
            auth = httpx.BasicAuth(username, password)
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._secrets = (password, token)
        self._authenticated = auth is not None
        self._connect_timeout = connect_timeout
        self._policy = policy
        self._client = httpx.AsyncClient(
            base_url=url,
            auth=auth,
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def __repr__(self) -> str:
        return f"{self.server} auth={'basic' if self._authenticated else 'none'}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self._client.aclose()

    def _scrub(self, text: str) -> str:
        # Server text is echoed into errors and logs; it should never hold our secret, but a
        # misbehaving proxy might reflect the Authorization header back.
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _failure(self, response: httpx.Response, method: str, path: str) -> AgentCallFailed:
        """The error for a non-2xx answer."""
        status = response.status_code
        name, message = "", ""
        if _is_json(response):
            try:
                body = _error_body.decode(response.content)
            except msgspec.DecodeError:
                pass
            else:
                name = body.name or body.tag or ""
                message = (body.data.message if body.data else "") or body.message or ""
        name = name or response.reason_phrase or f"HTTP{status}"
        message = self._scrub(message) or f"{method} {path}"
        if status == 401:
            hint = "wrong password" if self._authenticated else "no password configured"
            return AgentAuthError(status, name, f"OpenCode refused the credentials ({hint})", False)
        if status == 404:
            return AgentNotFound(status, name, message, False)
        if status == 500 and name == "UnknownError" and any(m in message for m in _PROXY_FAILURES):
            reason = f"{method} {path}: no such route (the server's proxy failed: {message})"
            return AgentNotFound(status, name, reason, False)
        if status in _NOT_ACTED or status >= 500:
            return AgentUnavailable(status, name, message, True)
        return AgentCallFailed(status, name, message, False)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        directory: str | None,
        params: Mapping[str, str] | None,
        body: object,
        idempotent: bool,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """Send, retrying per the policy; return a 2xx answer or raise the mapped error.

        ``read_timeout`` replaces the client's read timeout for this call (None: keep it).
        """
        limit = (
            httpx.Timeout(read_timeout, connect=self._connect_timeout)
            if read_timeout is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        query = dict(params or {})
        if directory:
            query["directory"] = directory
        headers = {"accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            content = _encoder.encode(body)
            headers["content-type"] = "application/json"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.request(
                    method, path, params=query, content=content, headers=headers, timeout=limit
                )
            except httpx.HTTPError as exc:
                failure, acted = _transport_failure(exc, self._scrub)
                retry = failure.retryable and (idempotent or not acted)
                if failure.retryable and not retry:
                    # The server may have acted: the caller must not blindly repeat it.
                    failure.retryable = False
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                failure = self._failure(response, method, path)
                retry = status in _NOT_ACTED or (status >= 500 and idempotent)
                retry = retry and not isinstance(failure, AgentNotFound)
                if retry:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                elif status >= 500:
                    failure.retryable = False
            attempt += 1
            if not retry or self._policy.gives_up(attempt):
                raise failure
            delay = retry_after if retry_after is not None else self._policy.delay(attempt)
            logger.warning(
                "OpenCode %s %s failed (%s %s); retry %d in %.3g s",
                method,
                path,
                failure.status or "-",
                failure.name,
                attempt,
                delay,
            )
            await trio.sleep(delay)

    async def call_json(
        self,
        method: str,
        path: str,
        decoder: msgspec.json.Decoder[T],
        *,
        directory: str | None = None,
        params: Mapping[str, str] | None = None,
        body: object = None,
        idempotent: bool = False,
        read_timeout: float | None = None,
    ) -> T:
        """Call and decode a JSON answer.

        Args:
            method: HTTP method.
            path: The route, already escaped.
            decoder: Decodes the body.
            directory: The instance (query ``directory``); ``None`` or empty: none.
            params: Other query parameters.
            body: A Struct to send as JSON.
            idempotent: Whether the call may be repeated after it may have reached the server.
            read_timeout: Seconds to wait for this answer instead of the client's own.

        Raises:
            AgentCallFailed: Mapped as described in ``mmthreads.adapters.opencode``.
        """
        response = await self._send(
            method,
            path,
            directory=directory,
            params=params,
            body=body,
            idempotent=idempotent,
            read_timeout=read_timeout,
        )
        if not _is_json(response):
            ctype = response.headers.get("content-type") or "no content type"
            raise AgentBadResponse(
                response.status_code,
                "NotJSON",
                f"{method} {path} answered {ctype}, not JSON (a route this server lacks?)",
                False,
            )
        try:
            return decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise AgentBadResponse(
                response.status_code, "InvalidBody", f"{method} {path}: {exc}", False
            ) from None

    async def call_empty(
        self, method: str, path: str, *, directory: str | None = None, body: object = None
    ) -> None:
        """Call a route that answers 204 (a JSON 2xx is accepted too; HTML is not)."""
        response = await self._send(
            method, path, directory=directory, params=None, body=body, idempotent=False
        )
        if response.status_code != 204 and not _is_json(response):
            ctype = response.headers.get("content-type") or "no content type"
            raise AgentBadResponse(
                response.status_code,
                "NotJSON",
                f"{method} {path} answered {ctype} (a route this server lacks?)",
                False,
            )

    @asynccontextmanager
    async def open_stream(self, path: str, *, directory: str | None) -> AsyncIterator[EventStream]:
        """Open an SSE route (no retries: the consumer reconnects with its own backoff).

        Raises:
            AgentCallFailed: Could not connect, a non-200 answer, or not ``text/event-stream``.
        """
        params = {"directory": directory} if directory else {}
        request = self._client.build_request(
            "GET",
            path,
            params=params,
            headers={"accept": "text/event-stream"},
            timeout=httpx.Timeout(None, connect=self._connect_timeout),
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, self._scrub)[0] from None
        try:
            if response.status_code != 200:
                try:
                    await response.aread()
                except httpx.HTTPError as exc:
                    raise _transport_failure(exc, self._scrub)[0] from None
                raise self._failure(response, "GET", path)
            ctype = response.headers.get("content-type", "")
            if ctype.split(";")[0].strip().lower() != "text/event-stream":
                raise AgentBadResponse(
                    200,
                    "NotEventStream",
                    f"GET {path} answered {ctype or 'no content type'}",
                    False,
                )
            stream = EventStream(response, self._scrub)
            try:
                yield stream
            finally:
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await stream.aclose()
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                try:
                    await response.aclose()
                except httpx.HTTPError:
                    logger.debug("closing %s failed", path, exc_info=True)
