"""The request loop under the Mattermost REST client: retries, rate limits, error mapping.

Theory of operation
-------------------
:class:`RequestLoop` owns one ``httpx.AsyncClient`` (its transport is injectable, so tests hand
it an ``httpx.MockTransport``) and sends every request through one loop that decides, per
answer, what happens next:

- An expected status: the body is returned (bounded by ``max_bytes`` when given).
- 429: the server refused before doing anything, so any request is safe to repeat.  The loop
  sleeps for the ``Retry-After`` the server names (``X-Ratelimit-Reset`` when that is
  missing) and tries again, up to ``rate_limit_retries`` times, then raises
  :class:`~mmthreads.errors.ChatRateLimited`.  A wait longer than ``max_retry_after`` is not
  slept through: the caller hears about it at once.
- 5xx and network errors: retried with the :class:`~mmthreads.core.backoff.RetryPolicy`, then
  :class:`~mmthreads.errors.ChatUnavailable`.  A request marked not idempotent (creating a
  post: the server has no de-duplication) is only repeated when the server cannot have acted
  on it: the connection was never made, or 502/503/504 answered.
- 401/403, 404 and other 4xx: :class:`~mmthreads.errors.ChatAuthError`,
  :class:`~mmthreads.errors.ChatNotFound` or :class:`~mmthreads.errors.ChatRequestError`
  carrying the ``AppError`` id and message.  No httpx exception leaves this module.

The token travels only in the ``Authorization`` header: it is not in a repr, a log line or an
exception message (server text is scrubbed of it, just in case).  The latest
``X-Ratelimit-*`` headers are kept in :attr:`RequestLoop.rate_limit`, so a scheduler can pace
itself before the server has to refuse anything.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

from mmthreads.core.backoff import RetryPolicy, parse_retry_after
from mmthreads.errors import (
    ChatAuthError,
    ChatNotFound,
    ChatRateLimited,
    ChatRequestError,
    ChatUnavailable,
    ConfigError,
)
from mmthreads.wire.mattermost import AppError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["DEFAULT_REST_POLICY", "BodyTooLarge", "RateLimitStatus", "RequestLoop", "api_url"]

logger = logging.getLogger(__name__)

#: Retries for 5xx and network errors: 0.5 s, 1 s, 2 s, then give up.
DEFAULT_REST_POLICY: Final = RetryPolicy(
    initial_delay=0.5, factor=2.0, max_delay=8.0, max_attempts=3
)
#: Failures that happen before the request reached the server: safe to repeat any request.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: 5xx answers that mean the server did not act (a proxy or an overloaded server answered).
_NOT_PROCESSED: Final = frozenset({502, 503, 504})
_APP_ERROR: Final = msgspec.json.Decoder(AppError)


class RateLimitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The server's rate-limit headers from the latest answer that carried them.

    Attributes:
        limit: ``X-Ratelimit-Limit``: the burst size plus one.
        remaining: ``X-Ratelimit-Remaining``: requests left before a 429.
        reset_after: ``X-Ratelimit-Reset``: seconds until the bucket is full again.
        observed_at: ``trio.current_time()`` when the answer arrived.
    """

    limit: int
    remaining: int
    reset_after: float
    observed_at: float


class BodyTooLarge(Exception):
    """A response body outgrew ``max_bytes``; the caller maps it to a ``ChatError``."""


def api_url(url: str) -> str:
    """Normalise a server URL to its ``/api/v4`` base.

    ``http://host:8065``, ``http://host:8065/`` and ``http://host:8065/api/v4/`` all give
    ``http://host:8065/api/v4``; a sub-path install keeps its prefix.

    Raises:
        ConfigError: Not an ``http``/``https`` URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Mattermost URL must be http(s)://host[:port][/path], not {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/api/v4"):
        path += "/api/v4"
    return f"{parts.scheme}://{parts.netloc}{path}"


class RequestLoop:
    """Sends authenticated requests to ``/api/v4`` until they succeed or fail for good.

    Args:
        url: The server URL, with or without ``/api/v4``.
        token: The access token.
        transport: An httpx transport to use instead of the network (tests).
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for each read (and write) of a request.
        retry_policy: Backoff for 5xx and network errors.
        rate_limit_retries: How many 429s in a row one call sits out before it gives up.
        max_retry_after: The longest ``Retry-After`` to sleep through; longer raises at once.
        random: Source of [0, 1) numbers for the policy's jitter.

    Raises:
        ConfigError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None,
        connect_timeout: float,
        read_timeout: float,
        retry_policy: RetryPolicy,
        rate_limit_retries: int,
        max_retry_after: float,
        random: Callable[[], float],
    ) -> None:
        self.api_url = api_url(url)
        self._token = token
        self._policy = retry_policy
        self._rate_limit_retries = rate_limit_retries
        self._max_retry_after = max_retry_after
        self._random = random
        #: The latest rate-limit headers seen, or None if the server sent none.
        self.rate_limit: RateLimitStatus | None = None
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "mmthreads"},
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<RequestLoop {self.api_url}>"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        form: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        ok: tuple[int, ...] = (200,),
        idempotent: bool = True,
        max_bytes: int | None = None,
    ) -> bytes:
        """Send one request, retrying as the module docstring says, and return the body.

        Args:
            method: The HTTP method.
            path: The path below ``/api/v4``, e.g. ``/posts``.
            params: Query parameters.
            json: A body to send as JSON.
            form: Form fields of a multipart body (sent before ``files``).
            files: Multipart file parts: ``{field: (filename, data, content_type)}``.
            ok: The statuses that mean success.
            idempotent: Whether repeating the request after an unclear failure is harmless.
            max_bytes: Refuse a success body longer than this: at once when its
                ``Content-Length`` says so, otherwise after reading it (without keeping it).

        Raises:
            ChatRequestError: A 4xx (``ChatAuthError``, ``ChatNotFound``) or another refusal.
            ChatUnavailable: 5xx or network failures outlasted the retries.
            ChatRateLimited: Still 429 after the retries, or asked to wait too long.
            BodyTooLarge: The success body is longer than ``max_bytes``.
        """
        endpoint = f"{method} {path}"
        content = msgspec.json.encode(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        failures = 0
        refusals = 0
        while True:
            request = self._http.build_request(
                method, path, params=params, content=content, data=form, files=files,
                headers=headers,
            )  # fmt: skip
            try:
                status, response_headers, body = await self._exchange(request, ok, max_bytes)
            except httpx.TransportError as exc:
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise ChatUnavailable(
                        f"{endpoint}: {self._describe(exc)}", maybe_done=True
                    ) from exc
                failures += 1
                await self._back_off(endpoint, failures, self._describe(exc), exc)
                continue
            except httpx.HTTPError as exc:
                raise ChatRequestError(0, "", self._describe(exc), endpoint=endpoint) from exc
            self._note_rate_limit(response_headers)
            if status in ok:
                return body
            if status == 429:
                refusals += 1
                wait = self._retry_after(response_headers, refusals)
                if refusals > self._rate_limit_retries or wait > self._max_retry_after:
                    raise ChatRateLimited(wait)
                logger.warning("%s: rate limited; retrying in %.3g s", endpoint, wait)
                await trio.sleep(wait)
                continue
            if status >= 500 and (idempotent or status in _NOT_PROCESSED):
                failures += 1
                await self._back_off(endpoint, failures, f"HTTP {status}")
                continue
            if status >= 500:
                raise ChatUnavailable(f"{endpoint}: HTTP {status}", maybe_done=True)
            raise self._refusal(status, body, endpoint)

    async def _exchange(
        self, request: httpx.Request, ok: tuple[int, ...], max_bytes: int | None
    ) -> tuple[int, httpx.Headers, bytes]:
        response = await self._http.send(request, stream=True)
        try:
            limit = max_bytes if response.status_code in ok else None
            declared = response.headers.get("Content-Length", "")
            if limit is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            chunks: list[bytes] = []
            size = 0
            # Breaking out of httpx's nested async generators would leave them unfinalized
            # (Trio warns), so a body that outgrows the limit is read to its end, unkept.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if limit is None or size <= limit:
                    chunks.append(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge
        finally:
            await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)

    async def _back_off(
        self, endpoint: str, attempt: int, what: str, cause: Exception | None = None
    ) -> None:
        if self._policy.gives_up(attempt):
            raise ChatUnavailable(f"{endpoint}: {what} (gave up after {attempt} tries)") from cause
        delay = self._policy.delay(attempt, self._random())
        logger.warning("%s: %s; retry %d in %.3g s", endpoint, what, attempt, delay)
        await trio.sleep(delay)

    def _retry_after(self, headers: httpx.Headers, refusals: int) -> float:
        # Retry-After is what the server names; the reset time is the next best thing.
        for name in ("Retry-After", "X-Ratelimit-Reset"):
            seconds = parse_retry_after(headers.get(name), now_s=time.time())
            if seconds is not None:
                return seconds
        return self._policy.delay(refusals, self._random())

    def _note_rate_limit(self, headers: httpx.Headers) -> None:
        try:
            limit = int(headers["X-Ratelimit-Limit"])
            remaining = int(headers["X-Ratelimit-Remaining"])
            reset_after = float(headers["X-Ratelimit-Reset"])
        except (KeyError, ValueError):
            return
        self.rate_limit = RateLimitStatus(
            limit=limit,
            remaining=remaining,
            reset_after=reset_after,
            observed_at=trio.current_time(),
        )

    def _scrub(self, text: str) -> str:
        # Our own messages never contain the token; this guards text that comes from outside.
        return text.replace(self._token, "***") if self._token else text

    def _describe(self, exc: BaseException) -> str:
        text = str(exc)
        return self._scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _refusal(self, status: int, body: bytes, endpoint: str) -> ChatRequestError:
        try:
            error = _APP_ERROR.decode(body)
            error_id, message = error.id, error.message
        except msgspec.DecodeError:
            error_id, message = "", body.decode("utf-8", "replace").strip()[:200]
        message = self._scrub(message)
        cls = ChatRequestError
        if status in (401, 403):
            cls = ChatAuthError
        elif status == 404:
            cls = ChatNotFound
        return cls(status, error_id, message or "no message", endpoint=endpoint)
