"""The commands typed in a session's thread: ``!models`` and ``!model``, carried out.

The answers are pure (``mmthreads.core.commands``, ``mmthreads.core.model_choice``); this module
does the two things they cannot: it reads the session's server's ``GET /provider`` into a
:class:`~mmthreads.core.model_choice.ModelsView`, and it writes a valid ``!model <choice>`` into
the session's mapping (``model``), which the prompts of that session send from then on
(:meth:`~mmthreads.runtime.bridge.Bridge.model_for`).  A server that cannot be read is told in
the answer, never raised.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from mmthreads.core.commands import Lane, answer_command
from mmthreads.core.model_choice import ModelsView, choose_model, models_view
from mmthreads.errors import AgentError
from mmthreads.mapping import iso_timestamp
from mmthreads.runtime.bridge import now_ms

if TYPE_CHECKING:
    from mmthreads.core.commands import CommandContext
    from mmthreads.mapping import ThreadMapping
    from mmthreads.runtime.bridge import Bridge

__all__ = ["read_models", "run_thread_command"]

logger = logging.getLogger(__name__)

#: The session-thread commands that show or change the model.
_MODEL_COMMANDS = frozenset({"models", "model"})


async def read_models(bridge: Bridge, mapping: ThreadMapping) -> ModelsView:
    """The models of the session's server, numbered, with the session's choice.

    Args:
        bridge: The running service's shared state.
        mapping: The session.

    Returns:
        The view; when the server cannot be read, a view carrying the reason.
    """
    client = bridge.server_of(mapping)
    try:
        catalog = await client.providers(mapping.directory)
    except AgentError as exc:
        logger.warning("session %s: cannot list the models: %s", mapping.session_id, exc)
        return ModelsView(current=mapping.model, error=str(exc))
    return models_view(catalog, current=mapping.model)


async def run_thread_command(
    bridge: Bridge, session_id: str, name: str, args: str, ctx: CommandContext
) -> str:
    """Answer a command typed in a session's thread, and carry out what it changes.

    Args:
        bridge: The running service's shared state.
        session_id: The thread's session.
        name: The command (lower case, without ``!``).
        args: Its arguments.
        ctx: The context of every command; the model commands add the session's models.

    Returns:
        The answer to post in the thread.
    """
    mapping = bridge.index.get(session_id)
    if mapping is not None and name in _MODEL_COMMANDS:
        view = await read_models(bridge, mapping)
        ctx = msgspec.structs.replace(ctx, models=view)
        if name == "model" and args:
            pick = choose_model(view, args)
            if pick.choice is not None:
                await _store_model(bridge, session_id, pick.choice.model)
    return answer_command(name, args, ctx, lane=Lane.SESSION_THREAD)


async def _store_model(bridge: Bridge, session_id: str, model: str) -> None:
    # The mapping is read again after the catalogue call: it may have changed meanwhile.
    mapping = bridge.index.get(session_id)
    if mapping is None:  # pragma: no cover - sessions are never dropped from the index
        return
    changes = {"model": model, "last_activity_at": iso_timestamp(now_ms() / 1000)}
    await bridge.update_mapping(msgspec.structs.replace(mapping, **changes))
    logger.info("session %s: model set to %s", session_id, model or "the server's default")
