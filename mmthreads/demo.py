"""``mmthreads demo``: a scripted morning played through the real core, printed as the DM looks.

Every decision in the output is made by the code the service runs: the router decides what each
post means, the thread machines decide what happens on a disconnect, a reconnect and an end, and
the renderer writes every text.  Only the transport is simulated: posts are appended to an
in-memory DM instead of being sent to Mattermost, and OpenCode's side is a list of facts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TextIO

from mmthreads.core.actions import ForwardPrompt, PersistMapping, PostNotice, ReplyToPost
from mmthreads.core.auth import Authorization
from mmthreads.core.commands import CommandContext, ServerStatus, StatusSnapshot, answer_command
from mmthreads.core.events import AgentLost, AgentRestored, PromptReceived, SessionEnded
from mmthreads.core.render import (
    PROMPT_REFUSED,
    SESSION_ENDED,
    THREAD_NOT_RECOGNIZED,
    render_notice,
    root_post,
)
from mmthreads.core.router import (
    Prompt,
    RefusePrompt,
    RunCommand,
    UnknownThread,
    route,
)
from mmthreads.core.router import SessionEnded as SessionEndedRoute
from mmthreads.core.states import ThreadState
from mmthreads.core.thread_machine import ThreadSession
from mmthreads.diagrams import thread_mermaid
from mmthreads.mapping import MappingIndex, ThreadMapping, iso_timestamp
from mmthreads.wire.mattermost import Post

if TYPE_CHECKING:
    from mmthreads.core.actions import ThreadAction
    from mmthreads.core.router import Route

__all__ = ["run_demo"]

SITE: Final = "http://127.0.0.1:8065"
OWNER: Final = "owner0000000000000000000000"[:26]
BOT: Final = "bot00000000000000000000000"[:26]
DM: Final = "dm000000000000000000000000"[:26]
T0: Final = 1_768_467_600_000  # 2026-01-15 09:00 UTC
MINUTE: Final = 60_000


@dataclass
class _Line:
    author: str
    text: str
    reactions: list[str] = field(default_factory=list)


@dataclass
class _Dm:
    """The DM as the person sees it: root posts in order, each with its replies."""

    roots: list[tuple[str, _Line]] = field(default_factory=list)
    replies: dict[str, list[_Line]] = field(default_factory=dict)
    by_id: dict[str, _Line] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    _next: int = 0

    def post(self, author: str, text: str, root_id: str = "") -> str:
        self._next += 1
        post_id = f"post{self._next:022d}"
        line = _Line(author, text)
        self.by_id[post_id] = line
        if root_id:
            self.replies.setdefault(root_id, []).append(line)
        else:
            self.roots.append((post_id, line))
        return post_id

    def react(self, post_id: str, emoji: str) -> None:
        self.by_id[post_id].reactions.append(emoji)

    def print(self, out: TextIO) -> None:
        for post_id, line in self.roots:
            out.write(_block(line, ""))
            for reply in self.replies.get(post_id, []):
                out.write(_block(reply, "    │ "))
            out.write("\n")


def _block(line: _Line, indent: str) -> str:
    lines = line.text.splitlines() or [""]
    if line.reactions:
        lines[-1] += "   " + " ".join(f":{name}: (bot)" for name in line.reactions)
    pad = " " * (len(line.author) + 2)
    head = f"{indent}{line.author}: {lines[0]}\n"
    return head + "".join(f"{indent}{pad}{text}\n" for text in lines[1:])


class _Bridge:
    """The service's wiring, minus the network: routes posts and carries out actions."""

    def __init__(self, dm: _Dm) -> None:
        self.dm = dm
        self.index = MappingIndex()
        self.machines: dict[str, ThreadSession] = {}
        self.auth = Authorization(
            owner_user_ids=frozenset({OWNER}), bot_user_id=BOT, dm_channel_ids=frozenset({DM})
        )
        self.now = T0

    def new_session(self, session_id: str, directory: str, title: str | None) -> None:
        stamp = iso_timestamp(self.now / 1000)
        mapping = ThreadMapping(
            session_id=session_id,
            thread_root_post_id="",
            short_id=session_id[:8],
            mattermost_user_id=OWNER,
            dm_channel_id=DM,
            project_name=directory.rsplit("/", 1)[-1],
            directory=directory,
            session_title=title,
            status=ThreadState.ACTIVE,
            created_at=stamp,
            last_activity_at=stamp,
        )
        root_id = self.dm.post("bot", root_post(mapping))
        self.index.put(_with(mapping, thread_root_post_id=root_id))
        self.machines[session_id] = ThreadSession(session_id, queue_limit=3)

    def owner_posts(self, text: str, root_id: str = "") -> str:
        post_id = self.dm.post("you", text, root_id)
        post = Post(id=post_id, channel_id=DM, user_id=OWNER, message=text, root_id=root_id)
        return self._answer(route(post, threads=self.index, auth=self.auth), root_id)

    def _answer(self, decision: Route, root_id: str) -> str:
        """Carry out a route; return the id of the bot's answer post, if any."""
        match decision:
            case RunCommand(command=name, args=args):
                return self.dm.post("bot", answer_command(name, args, self._context()))
            case RefusePrompt():
                self.dm.post("bot", PROMPT_REFUSED)
            case UnknownThread():
                self.dm.post("bot", THREAD_NOT_RECOGNIZED, root_id)
            case SessionEndedRoute():
                self.dm.post("bot", SESSION_ENDED, root_id)
            case Prompt(session_id=sid, text=text, post_id=post_id):
                event = PromptReceived(post_id=post_id, text=text, at_ms=self.now)
                self.apply(sid, self.machines[sid].handle(event))
            case _:
                self.dm.log.append(f"ignored: {decision!r}")
        return ""

    def apply(self, session_id: str, actions: list[ThreadAction]) -> None:
        mapping = self.index.get(session_id)
        assert mapping is not None
        root = mapping.thread_root_post_id
        for action in actions:
            match action:
                case PersistMapping(status=status, ended_at_ms=ended):
                    stamp = iso_timestamp(self.now / 1000)
                    mapping = _with(
                        mapping,
                        status=status,
                        last_activity_at=stamp,
                        ended_at=iso_timestamp(ended / 1000) if ended else None,
                    )
                    self.index.put(mapping)
                case PostNotice(notice=notice):
                    self.dm.post("bot", render_notice(notice, mapping=mapping), root)
                case ReplyToPost(notice=notice):
                    self.dm.post("bot", render_notice(notice, mapping=mapping), root)
                case ForwardPrompt(prompt=prompt):
                    self.dm.log.append(f"prompt {prompt.text!r} sent to session {session_id}")
                    self.dm.react(prompt.post_id, "white_check_mark")

    def _context(self) -> CommandContext:
        counts: dict[ThreadState, int] = {}
        for machine in self.machines.values():
            counts[machine.state] = counts.get(machine.state, 0) + 1
        status = StatusSnapshot(
            mattermost_connected=True,
            mattermost_since_ms=T0,
            servers=(ServerStatus(url="http://127.0.0.1:4096", version="1.18.33", connected=True),),
            threads_by_state=counts,
            queued_prompts=sum(len(m.queued) for m in self.machines.values()),
            started_ms=T0,
            mapping_path="~/.config/opencode/mattermost-threads.json",
        )
        return CommandContext(
            now_ms=self.now, site_url=SITE, sessions=tuple(self.index), status=status
        )

    def root_of(self, session_id: str) -> str:
        mapping = self.index.get(session_id)
        assert mapping is not None
        return mapping.thread_root_post_id


def _with(mapping: ThreadMapping, **changes: object) -> ThreadMapping:
    import msgspec

    return msgspec.structs.replace(mapping, **changes)


def play(out: TextIO) -> _Dm:
    """Play the scripted morning and return the DM it produced."""
    dm = _Dm()
    bridge = _Bridge(dm)
    a, b = "ses_4c1a9e2b7ffeQk2mB7x1Lr0aZt", "ses_3f9a0b11dffe8pN4sUy6Hc2WqE"
    bridge.new_session(a, "/home/dev/shop-api", "Fix checkout rounding")
    bridge.now += 2 * MINUTE
    bridge.new_session(b, "/home/dev/docs-site", None)
    bridge.now += MINUTE
    listing = bridge.owner_posts("!sessions")
    bridge.owner_posts("please fix the failing tests")
    bridge.owner_posts("Run the unit tests and fix what fails", bridge.root_of(a))
    bridge.owner_posts("Update the install guide for Python 3.12", bridge.root_of(b))
    bridge.owner_posts("thanks, which one is the API?", listing)
    bridge.now += 5 * MINUTE
    for sid in (a, b):  # the OpenCode server restarts
        bridge.apply(sid, bridge.machines[sid].handle(AgentLost(reason="event stream closed")))
    bridge.owner_posts("Also add a regression test", bridge.root_of(a))
    bridge.now += MINUTE
    for sid in (a, b):
        bridge.apply(sid, bridge.machines[sid].handle(AgentRestored(session_exists=True)))
    bridge.now += 20 * MINUTE
    bridge.apply(b, bridge.machines[b].handle(SessionEnded(reason="deleted", at_ms=bridge.now)))
    bridge.owner_posts("One more thing", bridge.root_of(b))
    bridge.owner_posts("!status")
    return dm


def run_demo(out: TextIO | None = None) -> int:
    """Run the demo, print the DM (to stdout by default), and return the exit code."""
    out = sys.stdout if out is None else out
    out.write("mmthreads demo — the core, played through a scripted morning\n")
    out.write("=" * 64 + "\n\n")
    out.write("The thread lifecycle (statecharts/thread.md, generated from the machine):\n\n")
    diagram = thread_mermaid()
    out.write("".join(f"    {line}\n" for line in diagram.splitlines() if "-->" in line))
    out.write("\nThe DM with the bot, as you would see it (replies indented under their root):\n\n")
    dm = play(out)
    dm.print(out)
    out.write("What the bridge did behind the scenes:\n")
    out.write("".join(f"  - {line}\n" for line in dm.log))
    return 0
