"""The bot's commands: the command table, the parser and the answers.

A command is a post whose text is ``!name`` optionally followed by arguments, matched
case-insensitively. Each command belongs to one *lane*: the main DM (the control lane: ``!help``,
``!sessions``, ``!status``) or a session thread (``!models``, ``!model``: that session's model).
The router asks the table whether a name is a command *in the lane the post was written
in*, so a main-DM command typed in a session thread is just text for the agent, and adding a
thread command is one more row in :data:`COMMANDS` plus its answer function.

Answers are pure: everything a command shows arrives in a :class:`CommandContext` built by the
runtime (the user's mappings, the current time, a :class:`StatusSnapshot`, and for the model
commands the session's :class:`~mmthreads.core.model_choice.ModelsView`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from typing import Final

import msgspec

from mmthreads.core.model_choice import (
    MODELS_UNAVAILABLE,
    ModelsView,
    choose_model,
    current_model_text,
    models_text,
)
from mmthreads.core.render import (
    code_span,
    escape_markdown,
    format_age,
    format_utc,
    parse_iso_ms,
    permalink,
)
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping

__all__ = [
    "COMMANDS",
    "CommandContext",
    "CommandSpec",
    "CommandTable",
    "Lane",
    "ServerStatus",
    "StatusSnapshot",
    "answer_command",
    "help_text",
    "parse_command",
    "sessions_text",
    "status_text",
    "unknown_command_text",
]

# "!name" then optional whitespace-separated arguments. The name is ASCII so that look-alike
# characters cannot smuggle a command past (or into) the table.
_COMMAND: Final = re.compile(r"!([A-Za-z][A-Za-z0-9_-]*)(?:\s+(.*))?", re.DOTALL)


class Lane(enum.Enum):
    """Where a command is recognized."""

    #: The main DM, outside any thread: the control lane.
    MAIN_DM = "main DM"
    #: Inside the thread of an active (or disconnected) session.
    SESSION_THREAD = "session thread"


class ServerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One OpenCode server as ``!status`` shows it.

    Attributes:
        url: The server's base URL.
        connected: Whether its event stream is currently up.
        version: The version the server reported ("" when unknown).
        since_ms: When the current connection state began (epoch ms), if known.
    """

    url: str
    connected: bool
    version: str = ""
    since_ms: int | None = None


class StatusSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The bridge's health at one moment, gathered by the runtime for ``!status``.

    Attributes:
        mattermost_connected: Whether the Mattermost WebSocket is up.
        mattermost_since_ms: When that state began (epoch ms), if known.
        servers: The OpenCode servers followed, in configuration order.
        threads_by_state: Number of threads in each state (missing states count as 0).
        queued_prompts: Prompts waiting in disconnected threads.
        started_ms: When the bridge started (epoch ms).
        mapping_path: Where the mapping file lives.
    """

    mattermost_connected: bool
    servers: tuple[ServerStatus, ...]
    threads_by_state: dict[ThreadState, int]
    queued_prompts: int
    started_ms: int
    mapping_path: str
    mattermost_since_ms: int | None = None


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a command may show, passed in so that answers stay pure.

    Attributes:
        now_ms: The current time (epoch ms), for ages and uptime.
        site_url: The Mattermost site URL, for permalinks.
        sessions: The requesting user's mappings, in any state.
        status: The bridge's health, for ``!status``.
        models: The session's models and choice, for ``!models`` and ``!model`` (None
            elsewhere).
    """

    now_ms: int
    site_url: str
    sessions: tuple[ThreadMapping, ...]
    status: StatusSnapshot
    models: ModelsView | None = None


#: An answer function: (arguments, context, the table it was found in) -> Mattermost markdown.
Handler = Callable[[str, CommandContext, "CommandTable"], str]


class CommandSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the command table.

    Attributes:
        name: The lower-case name, without the ``!``.
        lane: Where the command is recognized.
        summary: One line for ``!help``.
        handler: Produces the answer.
        usage: Argument synopsis for ``!help`` (e.g. ``<provider/model>``), if any.
    """

    name: str
    lane: Lane
    summary: str
    handler: Handler
    usage: str = ""


class CommandTable:
    """The commands, indexed by lane and name.

    Args:
        specs: The rows, in the order ``!help`` lists them. A (lane, name) pair must be unique.

    Raises:
        ValueError: If a (lane, name) pair repeats or a name is not lower case.
    """

    def __init__(self, specs: Iterable[CommandSpec]) -> None:
        self.specs: Final = tuple(specs)
        # One name -> spec dict per lane, found by identity: hashing an Enum member runs Python
        # code, and lookup() is on the router's hot path.
        self._lanes: Final = tuple((lane, dict[str, CommandSpec]()) for lane in Lane)
        for spec in self.specs:
            names = self._names(spec.lane)
            if spec.name in names or spec.name != spec.name.lower():
                raise ValueError(f"bad or duplicate command {spec.name!r} in {spec.lane.value}")
            names[spec.name] = spec

    def _names(self, lane: Lane) -> dict[str, CommandSpec]:
        for known, names in self._lanes:
            if known is lane:
                return names
        raise ValueError(f"unknown lane {lane!r}")

    def lookup(self, lane: Lane, name: str) -> CommandSpec | None:
        """The command called ``name`` (lower case) in ``lane``, if there is one."""
        return self._names(lane).get(name)

    def in_lane(self, lane: Lane) -> tuple[CommandSpec, ...]:
        """The commands of ``lane``, in table order."""
        return tuple(spec for spec in self.specs if spec.lane is lane)


def parse_command(text: str) -> tuple[str, str] | None:
    """Split a post's text into a command name and its arguments.

    Args:
        text: The post's message.

    Returns:
        ``(name, args)`` with the name lower-cased and the arguments stripped, or None when the
        text is not command-shaped (it must be ``!`` plus a name, alone or followed by
        whitespace). Whether the name is *known* is for the :class:`CommandTable` to say.
    """
    match = _COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    name, args = match.groups()
    return name.lower(), args.strip() if args else ""


# --- answers ------------------------------------------------------------------------------------


def help_text(table: CommandTable) -> str:
    """The answer to ``!help``: every command, grouped by lane.

    Args:
        table: The command table to describe.

    Returns:
        The command list, then how to prompt a session.
    """
    lines = ["**Commands** (type them here, in the main DM)"]
    lines += [_help_line(spec) for spec in table.in_lane(Lane.MAIN_DM)]
    thread_commands = table.in_lane(Lane.SESSION_THREAD)
    if thread_commands:
        lines.append("**In a session thread**")
        lines += [_help_line(spec) for spec in thread_commands]
    lines.append("To prompt a session, reply in its thread.")
    return "\n".join(lines)


def _help_line(spec: CommandSpec) -> str:
    usage = f" {spec.usage}" if spec.usage else ""
    return f"- `!{spec.name}{usage}` — {spec.summary}"


def sessions_text(sessions: Iterable[ThreadMapping], *, site_url: str, now_ms: int) -> str:
    """The answer to ``!sessions``: active and disconnected sessions, newest first.

    Args:
        sessions: The user's mappings; ended and orphaned ones are left out.
        site_url: The Mattermost site URL, for the thread permalinks.
        now_ms: The current time, for the ages.

    Returns:
        One line per session: project, short id, title, age, a marker when disconnected, and a
        permalink to the thread root.
    """
    live = [m for m in sessions if not m.status.is_final]
    if not live:
        return (
            "**Active sessions** (0)\n"
            "No active sessions. Start an OpenCode session and its thread appears in this DM."
        )
    # Newest first; unparsable start times sort last, ties by session id for a stable answer
    # (sorting by the tie-breaker first works because Python's sort is stable, reverse too).
    # Parsed, not compared as strings: the file may hold other offsets than toISOString's "Z".
    started = {m.session_id: parse_iso_ms(m.created_at) for m in live}
    live.sort(key=lambda m: m.session_id)
    live.sort(key=lambda m: _start_key(started[m.session_id]), reverse=True)
    lines = [f"**Active sessions** ({len(live)})"]
    for mapping in live:
        start = started[mapping.session_id]
        fields = [
            f"- **{escape_markdown(mapping.project_name)}** {code_span(mapping.short_id)}",
            escape_markdown(mapping.session_title) if mapping.session_title else "_untitled_",
            format_age(now_ms - start) if start is not None else "age unknown",
        ]
        if mapping.status is ThreadState.DISCONNECTED:
            fields.append(":warning: disconnected")
        fields.append(f"[open thread]({permalink(site_url, mapping.thread_root_post_id)})")
        lines.append(" · ".join(fields))
    return "\n".join(lines)


def _start_key(value: int | None) -> int:
    # Sort key that puts unknown start times after every real one (even pre-1970 ones).
    return -(2**63) if value is None else value


def status_text(status: StatusSnapshot, *, now_ms: int) -> str:
    """The answer to ``!status``: the bridge's health.

    Args:
        status: The snapshot gathered by the runtime.
        now_ms: The current time, for the uptime.

    Returns:
        One line each for Mattermost, every OpenCode server, thread counts, queued prompts,
        uptime and the mapping file.
    """
    lines = ["**mmthreads status**"]
    lines.append(
        f"- Mattermost: {_connection(status.mattermost_connected, status.mattermost_since_ms)}"
    )
    if not status.servers:
        lines.append("- OpenCode: no server configured")
    for server in status.servers:
        version = server.version or "version unknown"
        lines.append(
            f"- OpenCode {code_span(server.url)} ({escape_markdown(version)}): "
            f"{_connection(server.connected, server.since_ms)}"
        )
    counts = ", ".join(
        f"{status.threads_by_state.get(state, 0)} {state.value}" for state in ThreadState
    )
    lines.append(f"- Threads: {counts}")
    lines.append(f"- Queued prompts: {status.queued_prompts}")
    lines.append(
        f"- Uptime: {format_age(now_ms - status.started_ms)}"
        f" (since {format_utc(status.started_ms)})"
    )
    lines.append(f"- Mapping file: {code_span(status.mapping_path)}")
    return "\n".join(lines)


def _connection(connected: bool, since_ms: int | None) -> str:
    state = "connected" if connected else "**disconnected**"
    return f"{state} since {format_utc(since_ms)}" if since_ms is not None else state


def unknown_command_text(name: str, table: CommandTable, lane: Lane = Lane.MAIN_DM) -> str:
    """Reply to a command-shaped post whose name is not a command in ``lane``.

    Args:
        name: The name as parsed (lower case, without ``!``).
        table: The command table, to tell a command of another lane from a typo.
        lane: Where the post was written.

    Returns:
        The **Unknown command** heading and one line of guidance.
    """
    # A command of the other lane is not a typo: say where it works instead.
    elsewhere = [spec.lane for spec in table.specs if spec.name == name and spec.lane is not lane]
    if elsewhere:
        where = f"works only in a {elsewhere[0].value}"
    else:
        where = "is not a command"
    return f"**Unknown command**\n`!{name}` {where}; type `!help` to list the commands."


def answer_command(
    name: str,
    args: str,
    ctx: CommandContext,
    *,
    table: CommandTable | None = None,
    lane: Lane = Lane.MAIN_DM,
) -> str:
    """Run a command and return its answer.

    Args:
        name: The command name as the router reported it (lower case, without ``!``).
        args: The arguments (may be empty; commands without arguments ignore them).
        ctx: What the answer may show.
        table: The command table (default :data:`COMMANDS`).
        lane: Where the command was typed.

    Returns:
        The answer as Mattermost markdown; an unknown name gets the unknown-command reply.
    """
    commands = COMMANDS if table is None else table
    spec = commands.lookup(lane, name)
    if spec is None:
        return unknown_command_text(name, commands, lane)
    return spec.handler(args, ctx, commands)


def _answer_help(args: str, ctx: CommandContext, table: CommandTable) -> str:
    return help_text(table)


def _answer_sessions(args: str, ctx: CommandContext, table: CommandTable) -> str:
    return sessions_text(ctx.sessions, site_url=ctx.site_url, now_ms=ctx.now_ms)


def _answer_status(args: str, ctx: CommandContext, table: CommandTable) -> str:
    return status_text(ctx.status, now_ms=ctx.now_ms)


def _answer_models(args: str, ctx: CommandContext, table: CommandTable) -> str:
    if ctx.models is None:
        return f"{MODELS_UNAVAILABLE}\nThe models are listed in a session's thread."
    return models_text(ctx.models)


def _answer_model(args: str, ctx: CommandContext, table: CommandTable) -> str:
    if ctx.models is None:
        return f"{MODELS_UNAVAILABLE}\nThe model is chosen in a session's thread."
    if not args:
        return current_model_text(ctx.models)
    # The runtime persists the same pick (choose_model is pure, so both agree).
    return choose_model(ctx.models, args).text


#: The commands of the bot. Session-thread rows (``lane=Lane.SESSION_THREAD``) are recognized
#: only inside the thread of an active or disconnected session.
COMMANDS: Final = CommandTable(
    (
        CommandSpec(
            name="help", lane=Lane.MAIN_DM, summary="list the commands", handler=_answer_help
        ),
        CommandSpec(
            name="sessions",
            lane=Lane.MAIN_DM,
            summary="active sessions, newest first, with links to their threads",
            handler=_answer_sessions,
        ),
        CommandSpec(
            name="status",
            lane=Lane.MAIN_DM,
            summary="health of the bridge: connections, threads, queued prompts",
            handler=_answer_status,
        ),
        CommandSpec(
            name="models",
            lane=Lane.SESSION_THREAD,
            summary="the models this session can use, numbered",
            handler=_answer_models,
        ),
        CommandSpec(
            name="model",
            lane=Lane.SESSION_THREAD,
            summary="show this session's model, or choose one",
            usage="[<number> | <provider/model> | default]",
            handler=_answer_model,
        ),
    )
)
