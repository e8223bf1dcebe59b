"""Adapters at the edge: the only code that talks to Mattermost and OpenCode over the network.

Each adapter maps its libraries' exceptions to ``mmthreads.errors`` and the servers' events to
the core's events, so nothing from httpx, trio-websocket or wsproto reaches ``core/``.
"""

from __future__ import annotations
