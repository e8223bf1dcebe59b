"""What ``!status`` shows of the OpenCode servers: connected or not, since when, which version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmthreads.core import agent_events as ae
from mmthreads.core.commands import ServerStatus
from mmthreads.runtime.bridge import now_ms

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ServerTracker"]


class ServerTracker:
    """Follows each server's stream events and keeps its state for ``!status``.

    Args:
        urls: The servers, in configuration order.
    """

    def __init__(self, urls: Iterable[str]) -> None:
        self._servers: dict[str, ServerStatus] = {
            url: ServerStatus(url=url, connected=False) for url in urls
        }

    def __repr__(self) -> str:
        return f"<ServerTracker servers={len(self._servers)}>"

    def observe(self, url: str, event: ae.AgentEvent) -> None:
        """Record a stream event of the server ``url`` (others are ignored)."""
        old = self._servers.get(url, ServerStatus(url=url, connected=False))
        if isinstance(event, ae.AgentStreamConnected):
            self._servers[url] = ServerStatus(
                url=url,
                connected=True,
                version=event.version or old.version,
                since_ms=old.since_ms if old.connected else now_ms(),
            )
        elif isinstance(event, ae.AgentStreamLost):
            since = now_ms() if old.connected or old.since_ms is None else old.since_ms
            self._servers[url] = ServerStatus(
                url=url, connected=False, version=old.version, since_ms=since
            )

    def snapshot(self) -> tuple[ServerStatus, ...]:
        """Every server's state, in configuration order."""
        return tuple(self._servers.values())
