"""What every part of the running service shares: :class:`Bridge`, and the wall clock.

The bridge holds the clients (Mattermost, each OpenCode server), the bot's identity and limits,
the mapping index and file, the outbox every Mattermost write goes through, and the settings the
session threads need.  Mapping-file writes are group commits (:meth:`Bridge.persist`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from mmthreads.errors import AgentError, MappingFileError
from mmthreads.runtime.outbox import Outbox

if TYPE_CHECKING:
    from mmthreads.adapters.mattermost_rest import MattermostClient
    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.mapping import ThreadMapping
    from mmthreads.mapping_index import MappingIndex
    from mmthreads.mapping_store import MappingStore
    from mmthreads.wire.opencode_normalise import ModelInfo, ProviderCatalog

__all__ = ["Bridge", "now_ms"]

logger = logging.getLogger(__name__)


def now_ms() -> int:
    """The wall clock in epoch milliseconds (timestamps shown to users and written to files)."""
    return int(time.time() * 1000)


@dataclass
class Bridge:
    """What every part of the running service shares.

    Attributes:
        chat: The Mattermost REST client.
        bot_user_id: The bot's own user id.
        max_post_size: The server's post limit in runes.
        site_url: The Mattermost URL for permalinks.
        index: The thread mappings (the source of truth while running).
        store: The mapping file.
        servers: OpenCode clients by server base URL, in configuration order.
        edit_interval: Seconds between two edits of one answer post.
        queue_limit: Prompts kept per thread while its server is unreachable.
        inbox_size: Events buffered per thread task.
        max_file_size: Largest attachment forwarded to OpenCode, in bytes.
        disconnect_notice_delay: Seconds a "disconnected" notice is held back; a server back
            within them posts neither it nor the "reconnected" notice.
        prompt_sent: Set when a prompt went to OpenCode (the service then writes the inbound
            cursor at once, and puts a new event here).
        started_ms: When the service started.
        default_models: The default model found per server (filled on first use).
        catalogs: The model catalog read per server (filled with the default model).
        outbox: Every write to Mattermost (the service runs it).
    """

    chat: MattermostClient
    bot_user_id: str
    max_post_size: int
    site_url: str
    index: MappingIndex
    store: MappingStore
    servers: dict[str, OpenCodeClient]
    edit_interval: float
    queue_limit: int
    inbox_size: int
    max_file_size: int = 10 * 1024 * 1024
    disconnect_notice_delay: float = 0.0
    prompt_sent: trio.Event = field(default_factory=trio.Event)
    started_ms: int = field(default_factory=now_ms)
    default_models: dict[str, tuple[str, str]] = field(default_factory=dict)
    catalogs: dict[str, ProviderCatalog] = field(default_factory=dict)
    outbox: Outbox = field(init=False)
    _save_requested: int = field(default=0, init=False)
    _saved: int = field(default=0, init=False)
    _saving: bool = field(default=False, init=False)
    _save_done: trio.Event = field(default_factory=trio.Event, init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.chat, clock_ms=now_ms)

    def server_of(self, mapping: ThreadMapping) -> OpenCodeClient:
        """The client of the server a session lives on ("" names the first server)."""
        client = self.servers.get(mapping.opencode_server)
        return client if client is not None else next(iter(self.servers.values()))

    async def persist(self) -> None:
        """Write every mapping to the file; return once a write made after this call is done.

        Writes are group commits: callers arriving while a write runs share the next one, so
        a burst of changes costs two writes, not one per change.  Each write happens in a
        worker thread.  A failed write is logged, not raised: the index stays the truth while
        running, and the next write (or the one at shutdown) carries the change.
        """
        self._save_requested += 1
        wanted = self._save_requested
        while self._saved < wanted:
            if self._saving:
                await self._save_done.wait()
                continue
            self._saving = True
            covers = self._save_requested
            try:
                await trio.to_thread.run_sync(self.store.save, list(self.index), time.time())
            except MappingFileError as exc:
                logger.error("cannot write the mapping file: %s", exc)
            finally:
                self._saving = False
                self._saved = covers
                done, self._save_done = self._save_done, trio.Event()
                done.set()

    async def update_mapping(self, mapping: ThreadMapping) -> None:
        """Replace a mapping in the index and write the file (see :meth:`persist`)."""
        self.index.put(mapping)
        await self.persist()

    async def model_info(self, mapping: ThreadMapping) -> ModelInfo | None:
        """What the session's model can take (from its server's catalog), None if unknown."""
        try:
            chosen = await self.model_for(mapping)
            if chosen is None:
                return None
            client = self.server_of(mapping)
            catalog = self.catalogs.get(client.server)
            if catalog is None:
                catalog = await client.providers(mapping.directory)
                self.catalogs[client.server] = catalog
        except AgentError as exc:
            logger.warning("cannot read the models of %s: %s", mapping.opencode_server, exc)
            return None
        return catalog.find(*chosen)

    async def model_for(self, mapping: ThreadMapping) -> tuple[str, str] | None:
        """The model to prompt with: the session's choice, else its server's default."""
        if "/" in mapping.model:
            provider, _, model = mapping.model.partition("/")
            return provider, model
        client = self.server_of(mapping)
        cached = self.default_models.get(client.server)
        if cached is not None:
            return cached
        catalog = await client.providers(mapping.directory)
        self.catalogs[client.server] = catalog
        chosen = catalog.default_model()
        if chosen is not None:
            self.default_models[client.server] = chosen
        return chosen
