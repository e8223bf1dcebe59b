"""The service: :func:`serve` wires Mattermost, the OpenCode servers and the session threads.

Lifecycle
---------
1. The mapping file is loaded (a file of a newer version stops the start: it is never
   overwritten).
2. The bot logs in, the owners are resolved and their DMs opened, waiting with backoff while
   Mattermost is unreachable (:func:`~mmthreads.runtime.startup.connect_chat`).
3. Every live thread of the mapping file gets its runner back (re-attached).
4. The Mattermost WebSocket is opened; its events are routed by
   :class:`~mmthreads.runtime.inbound.ChatInbound`, which first fetches the DM posts created
   since the persisted :class:`~mmthreads.runtime.cursor.InboundCursor` (written at most once a
   second, at once after a prompt was sent to OpenCode, and at shutdown).
5. One event stream per OpenCode server is followed; its events go to the
   :class:`~mmthreads.runtime.sessions.SessionRegistry`, which creates threads for new sessions
   and hands everything else to the session's runner.
6. ``task_status.started()``: the bridge is up.

Shutdown: when ``shutdown_trigger`` is set, every thread's runner is closed (it finishes its
inbox and shows its answer's last state) within ``timeouts.graceful_timeout``, then every task is
cancelled, and the mapping file is written one last time in a shielded scope bounded by
``timeouts.flush_timeout``, so a stuck disk cannot hold the process forever and a cancelled
service still leaves its file up to date.
"""

from __future__ import annotations

import logging
import signal
from contextlib import AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING

import trio

from mmthreads.adapters.mattermost_rest import MattermostClient
from mmthreads.adapters.mattermost_ws import run_chat_connection
from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.adapters.opencode_events import run_event_stream
from mmthreads.core import agent_events as ae
from mmthreads.core.chat_events import ChatEvent
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.bridge import Bridge, now_ms
from mmthreads.runtime.cursor import InboundCursor, cursor_path
from mmthreads.runtime.inbound import ChatInbound
from mmthreads.runtime.sessions import SessionRegistry
from mmthreads.runtime.startup import connect_chat
from mmthreads.runtime.status import ServerTracker

if TYPE_CHECKING:
    from mmthreads.runtime.startup import ChatIdentity
    from mmthreads.settings import Settings

__all__ = ["serve"]

logger = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    *,
    shutdown_trigger: trio.Event | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the bridge until ``shutdown_trigger`` is set (or forever).

    Args:
        settings: The validated settings.
        shutdown_trigger: Set it to stop the service gracefully; ``serve`` then returns.
        task_status: Started once the bridge is connected and following its servers.

    Raises:
        MappingVersionError: The mapping file is of a newer version.
        StartupError: The bot token is refused or an owner does not exist.
        ChatError: Mattermost refused the start-up calls, or stayed unreachable beyond the
            retry policy's bound.
    """
    trigger = shutdown_trigger if shutdown_trigger is not None else trio.Event()
    running = _Phase()
    async with trio.open_nursery() as outer:
        outer.start_soon(_cancel_when_set, trigger, outer.cancel_scope, running, settings)
        await _run(settings, trigger, running, task_status)
        outer.cancel_scope.cancel()


class _Phase:
    """Whether the service got past start-up (then it stops gracefully rather than at once)."""

    def __init__(self) -> None:
        self.running = False


async def _cancel_when_set(
    trigger: trio.Event, scope: trio.CancelScope, phase: _Phase, settings: Settings
) -> None:
    await trigger.wait()
    logger.info("shutdown requested")
    if phase.running:
        # The running service closes its threads itself; this is only the backstop.
        timeouts = settings.timeouts
        await trio.sleep(timeouts.graceful_timeout + timeouts.flush_timeout)
        logger.error("graceful shutdown took too long: stopping at once")
    scope.cancel()


async def _run(
    settings: Settings, trigger: trio.Event, phase: _Phase, task_status: trio.TaskStatus[None]
) -> None:
    store = MappingStore(settings.mapping_file)
    loaded = await trio.to_thread.run_sync(store.load)
    if loaded.problem:
        logger.warning("mapping file: %s (kept aside as %s)", loaded.problem, loaded.backup)
    cursor = await trio.to_thread.run_sync(
        partial(InboundCursor.load, cursor_path(settings.mapping_file), now_ms=now_ms())
    )
    token = settings.mattermost.token.reveal()
    timeouts = settings.timeouts
    async with AsyncExitStack() as stack:
        chat = await stack.enter_async_context(
            MattermostClient(
                settings.mattermost.url,
                token,
                connect_timeout=timeouts.connect_timeout,
                read_timeout=timeouts.request_timeout,
            )
        )
        servers: dict[str, OpenCodeClient] = {}
        for url in settings.opencode.urls:
            client = await stack.enter_async_context(
                OpenCodeClient(
                    url,
                    username=settings.opencode.username,
                    password=settings.opencode.password.reveal() or None,
                    connect_timeout=timeouts.connect_timeout,
                    read_timeout=timeouts.request_timeout,
                )
            )
            servers[client.server] = client
        identity = await connect_chat(chat, settings)
        bridge = Bridge(
            chat=chat,
            bot_user_id=identity.bot_user_id,
            max_post_size=identity.max_post_size,
            site_url=identity.site_url,
            index=loaded.index,
            store=store,
            servers=servers,
            edit_interval=settings.stream.edit_interval,
            queue_limit=settings.sessions.queue_limit,
            inbox_size=settings.sessions.inbox_size,
            max_file_size=settings.files.max_size,
            disconnect_notice_delay=settings.sessions.disconnect_notice_delay,
        )
        try:
            await _run_tasks(settings, bridge, identity, cursor, token, trigger, phase, task_status)
        finally:
            with trio.move_on_after(timeouts.flush_timeout) as flush:
                flush.shield = True
                await bridge.persist()  # logs a failed write itself
                await _save_cursor(cursor)
            if flush.cancelled_caught:
                logger.error("writing the mapping file at shutdown took too long")


async def _run_tasks(
    settings: Settings,
    bridge: Bridge,
    identity: ChatIdentity,
    cursor: InboundCursor,
    token: str,
    trigger: trio.Event,
    phase: _Phase,
    task_status: trio.TaskStatus[None],
) -> None:
    # New threads go to the first owner's DM (one person's sessions; see the spec's scope).
    owner, dm = next(iter(identity.dm_channels.items()))
    timeouts = settings.timeouts
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.outbox.run)
        registry = SessionRegistry(
            bridge,
            nursery,
            owner_user_id=owner,
            dm_channel_id=dm,
            restart_policy=settings.retry.restart,
            adoption_window=settings.sessions.adoption_window,
            controls=settings.controls,
        )
        logger.info("re-attached %d thread(s)", registry.reattach())
        tracker = ServerTracker(bridge.servers)
        inbound = ChatInbound(
            identity,
            registry,
            mapping_path=str(settings.mapping_file),
            cursor=cursor,
            servers=tracker,
            flood=settings.flood,
        )
        nursery.start_soon(_flush_cursor, cursor, bridge)
        chat_send, chat_receive = trio.open_memory_channel[ChatEvent](settings.sessions.inbox_size)
        nursery.start_soon(inbound.consume, chat_receive)
        await nursery.start(
            partial(
                run_chat_connection,
                settings.mattermost.url,
                token,
                chat_send,
                policy=settings.retry.mattermost,
                ping_interval=timeouts.chat_ping_delay,
                pong_timeout=timeouts.chat_heartbeat_timeout,
                handshake_timeout=timeouts.connect_timeout,
            )
        )
        first_news: list[trio.Event] = []
        for client in bridge.servers.values():
            send, receive = trio.open_memory_channel[ae.AgentEvent](settings.sessions.inbox_size)
            heard = trio.Event()
            first_news.append(heard)
            nursery.start_soon(_consume_agent, registry, tracker, client, receive, heard)
            await nursery.start(
                partial(
                    run_event_stream,
                    client,
                    send,
                    directories=partial(_directories, bridge, client),
                    policy=settings.retry.opencode,
                    heartbeat_timeout=timeouts.agent_heartbeat_timeout,
                )
            )
        # Sessions created before a stream is up would be missed: report "started" once every
        # server has answered (connected or not), or after the connect timeout.
        with trio.move_on_after(timeouts.connect_timeout):
            for heard in first_news:
                await heard.wait()
        logger.info("mmthreads is running: %d OpenCode server(s)", len(bridge.servers))
        phase.running = True
        task_status.started()
        await trigger.wait()
        # Graceful: every thread shows its answer's last state, within the deadline; then the
        # connections go (the mapping file is flushed by the caller).
        with trio.move_on_after(timeouts.graceful_timeout) as graceful:
            await registry.aclose()
            await bridge.outbox.drain()
        if graceful.cancelled_caught:
            logger.warning(
                "threads still busy after %.1f s (%d Mattermost write(s) not done): stopping",
                timeouts.graceful_timeout,
                bridge.outbox.pending,
            )
        nursery.cancel_scope.cancel()


def _directories(bridge: Bridge, client: OpenCodeClient) -> set[str]:
    return {m.directory for m in bridge.index if bridge.server_of(m) is client}


async def _flush_cursor(cursor: InboundCursor, bridge: Bridge) -> None:
    # Coalesced: at most one write a second, only when something was handled; at once after a
    # prompt went to OpenCode, so a crash right after cannot send it a second time on restart.
    while True:
        wake = bridge.prompt_sent = trio.Event()
        with trio.move_on_after(1.0):
            await wake.wait()
        await _save_cursor(cursor)


async def _save_cursor(cursor: InboundCursor) -> None:
    if not cursor.dirty:
        return
    # Serialized here, in the Trio thread that updates it; only the disk write is offloaded.
    data = cursor.dump()
    try:
        await trio.to_thread.run_sync(cursor.write, data)
    except OSError as exc:
        cursor.dirty = True
        logger.warning("cannot write the inbound cursor %s: %s", cursor.path, exc)


async def _consume_agent(
    registry: SessionRegistry,
    tracker: ServerTracker,
    client: OpenCodeClient,
    receive: trio.MemoryReceiveChannel[ae.AgentEvent],
    heard: trio.Event,
) -> None:
    async with receive:
        async for event in receive:
            tracker.observe(client.server, event)
            await registry.on_agent_event(client, event)
            if isinstance(event, (ae.AgentStreamConnected, ae.AgentStreamLost)):
                heard.set()


async def serve_until_signalled(settings: Settings) -> None:
    """Run :func:`serve` until SIGINT or SIGTERM (``mmthreads run``); a second signal kills.

    Args:
        settings: The validated settings.
    """
    trigger = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    if trigger.is_set():
                        logger.warning("second signal: stopping at once")
                        nursery.cancel_scope.cancel()
                        return
                    logger.info("signal %d: shutting down", signum)
                    trigger.set()

            nursery.start_soon(watch)
            await serve(settings, shutdown_trigger=trigger)
            nursery.cancel_scope.cancel()
