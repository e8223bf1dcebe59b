"""Commands: the parser, the table, and the exact answers of !help, !sessions and !status."""

from __future__ import annotations

import pytest

from mmthreads.core.commands import (
    COMMANDS,
    CommandContext,
    CommandSpec,
    CommandTable,
    Lane,
    ServerStatus,
    StatusSnapshot,
    answer_command,
    help_text,
    parse_command,
    sessions_text,
    status_text,
    unknown_command_text,
)
from mmthreads.core.render import parse_iso_ms
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping


def ms(iso: str) -> int:
    value = parse_iso_ms(iso)
    assert value is not None
    return value


NOW = ms("2026-01-15T16:35:00.000Z")
SITE = "https://mm.example.com/"


def mapping(
    session_id: str,
    status: ThreadState,
    created_at: str,
    *,
    title: str | None = None,
    project: str = "web",
) -> ThreadMapping:
    return ThreadMapping(
        session_id=session_id,
        thread_root_post_id=f"root_{session_id[4:8]}",
        short_id=session_id[:8],
        mattermost_user_id="owner",
        dm_channel_id="dm",
        project_name=project,
        directory=f"/home/dev/{project}",
        status=status,
        created_at=created_at,
        last_activity_at=created_at,
        session_title=title,
    )


SESSIONS = (
    mapping("ses_dddd4444", ThreadState.ACTIVE, "2026-01-11T09:00:00.000Z", title="Old one",
            project="business-automation"),
    mapping("ses_aaaa1111", ThreadState.ACTIVE, "2026-01-15T16:32:00.000Z",
            title="Fix *email* pipeline"),
    mapping("ses_cccc3333", ThreadState.ENDED, "2026-01-15T16:34:00.000Z"),
    mapping("ses_eeee5555", ThreadState.ORPHANED, "2026-01-15T16:34:30.000Z"),
    mapping("ses_bbbb2222", ThreadState.DISCONNECTED, "2026-01-15T14:30:00.000Z", project="api"),
)  # fmt: skip

STATUS = StatusSnapshot(
    mattermost_connected=True,
    mattermost_since_ms=ms("2026-01-15T14:00:00Z"),
    servers=(
        ServerStatus(url="http://127.0.0.1:4096", connected=True, version="1.0.3"),
        ServerStatus(
            url="http://10.0.0.2:4096", connected=False, since_ms=ms("2026-01-15T16:00:00Z")
        ),
    ),
    threads_by_state={ThreadState.ACTIVE: 2, ThreadState.DISCONNECTED: 1, ThreadState.ENDED: 5},
    queued_prompts=3,
    started_ms=ms("2026-01-15T13:30:00Z"),
    mapping_path="/home/dev/.config/opencode/mattermost-threads.json",
)

CTX = CommandContext(now_ms=NOW, site_url=SITE, sessions=SESSIONS, status=STATUS)

HELP = """\
**Commands** (type them here, in the main DM)
- `!help` — list the commands
- `!sessions` — active sessions, newest first, with links to their threads
- `!status` — health of the bridge: connections, threads, queued prompts
**In a session thread**
- `!models` — the models this session can use, numbered
- `!model [<number> | <provider/model> | default]` — show this session's model, or choose one
To prompt a session, reply in its thread."""

MAIN_HELP = """\
**Commands** (type them here, in the main DM)
- `!help` — list the commands
- `!sessions` — active sessions, newest first, with links to their threads
- `!status` — health of the bridge: connections, threads, queued prompts
To prompt a session, reply in its thread."""

SESSIONS_ANSWER = """\
**Active sessions** (3)
- **web** `ses_aaaa` · Fix \\*email\\* pipeline · 3m · [open thread](https://mm.example.com/_redirect/pl/root_aaaa)
- **api** `ses_bbbb` · _untitled_ · 2h 5m · :warning: disconnected · [open thread](https://mm.example.com/_redirect/pl/root_bbbb)
- **business-automation** `ses_dddd` · Old one · 4d · [open thread](https://mm.example.com/_redirect/pl/root_dddd)"""

STATUS_ANSWER = """\
**mmthreads status**
- Mattermost: connected since 2026-01-15 14:00 UTC
- OpenCode `http://127.0.0.1:4096` (1.0.3): connected
- OpenCode `http://10.0.0.2:4096` (version unknown): **disconnected** since 2026-01-15 16:00 UTC
- Threads: 2 active, 1 disconnected, 5 ended, 0 orphaned
- Queued prompts: 3
- Uptime: 3h 5m (since 2026-01-15 13:30 UTC)
- Mapping file: `/home/dev/.config/opencode/mattermost-threads.json`"""


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("!help", ("help", "")),
        ("!HeLp", ("help", "")),
        ("  !status  ", ("status", "")),
        ("!model openai/gpt-5  ", ("model", "openai/gpt-5")),
        ("!a-b_c9 x\ny", ("a-b_c9", "x\ny")),
        ("!", None),
        ("! help", None),
        ("!!help", None),
        ("!9lives", None),
        ("help", None),
        ("say !help", None),
        ("!hélp", None),
        ("!help!", None),
        ("", None),
    ],
)
def test_parse_command(text: str, parsed: tuple[str, str] | None) -> None:
    assert parse_command(text) == parsed


def test_the_table_holds_the_commands_of_both_lanes() -> None:
    assert [(s.name, s.lane) for s in COMMANDS.specs] == [
        ("help", Lane.MAIN_DM),
        ("sessions", Lane.MAIN_DM),
        ("status", Lane.MAIN_DM),
        ("models", Lane.SESSION_THREAD),
        ("model", Lane.SESSION_THREAD),
    ]
    assert COMMANDS.lookup(Lane.MAIN_DM, "sessions") is COMMANDS.specs[1]
    assert COMMANDS.lookup(Lane.SESSION_THREAD, "sessions") is None
    assert COMMANDS.lookup(Lane.MAIN_DM, "models") is None
    assert [s.name for s in COMMANDS.in_lane(Lane.SESSION_THREAD)] == ["models", "model"]


def _noop(args: str, ctx: CommandContext, table: CommandTable) -> str:
    return ""


@pytest.mark.parametrize("names", [("help", "help"), ("Help",)])
def test_the_table_refuses_duplicate_or_mixed_case_names(names: tuple[str, ...]) -> None:
    specs = [CommandSpec(name=n, lane=Lane.MAIN_DM, summary="", handler=_noop) for n in names]
    with pytest.raises(ValueError, match="bad or duplicate command"):
        CommandTable(specs)


def test_help() -> None:
    assert help_text(COMMANDS) == HELP
    assert answer_command("help", "", CTX) == HELP


def test_help_lists_session_thread_commands_separately() -> None:
    table = CommandTable(
        [
            *COMMANDS.in_lane(Lane.MAIN_DM),
            CommandSpec(
                name="model",
                lane=Lane.SESSION_THREAD,
                summary="choose the model",
                usage="<provider/model>",
                handler=_noop,
            ),
        ]
    )
    assert answer_command("help", "", CTX, table=table) == (
        MAIN_HELP.removesuffix("To prompt a session, reply in its thread.")
        + "**In a session thread**\n"
        + "- `!model <provider/model>` — choose the model\n"
        + "To prompt a session, reply in its thread."
    )
    assert unknown_command_text("model", table) == (
        "**Unknown command**\n"
        "`!model` works only in a session thread; type `!help` to list the commands."
    )


def test_sessions_newest_first_live_only_with_ages_and_permalinks() -> None:
    assert sessions_text(SESSIONS, site_url=SITE, now_ms=NOW) == SESSIONS_ANSWER
    assert answer_command("sessions", "ignored args", CTX) == SESSIONS_ANSWER


def test_sessions_when_there_are_none() -> None:
    ended = [mapping("ses_cccc3333", ThreadState.ENDED, "2026-01-15T16:34:00.000Z")]
    assert sessions_text(ended, site_url=SITE, now_ms=NOW) == (
        "**Active sessions** (0)\n"
        "No active sessions. Start an OpenCode session and its thread appears in this DM."
    )


def test_sessions_with_an_unreadable_start_time_sort_last() -> None:
    odd = mapping("ses_ffff6666", ThreadState.ACTIVE, "yesterday")
    fresh = mapping("ses_aaaa1111", ThreadState.ACTIVE, "2026-01-15T16:35:00.000Z")
    lines = sessions_text([odd, fresh], site_url=SITE, now_ms=NOW).splitlines()
    assert lines[1].startswith("- **web** `ses_aaaa` · _untitled_ · <1m · ")
    assert lines[2].startswith("- **web** `ses_ffff` · _untitled_ · age unknown · ")


def test_status() -> None:
    assert status_text(STATUS, now_ms=NOW) == STATUS_ANSWER
    assert answer_command("status", "", CTX) == STATUS_ANSWER


def test_status_without_servers_and_while_disconnected() -> None:
    bare = StatusSnapshot(
        mattermost_connected=False,
        servers=(),
        threads_by_state={},
        queued_prompts=0,
        started_ms=NOW,
        mapping_path="/tmp/m.json",
    )
    assert status_text(bare, now_ms=NOW) == (
        "**mmthreads status**\n"
        "- Mattermost: **disconnected**\n"
        "- OpenCode: no server configured\n"
        "- Threads: 0 active, 0 disconnected, 0 ended, 0 orphaned\n"
        "- Queued prompts: 0\n"
        "- Uptime: <1m (since 2026-01-15 16:35 UTC)\n"
        "- Mapping file: `/tmp/m.json`"
    )


def test_unknown_command() -> None:
    expected = "**Unknown command**\n`!foo` is not a command; type `!help` to list the commands."
    assert unknown_command_text("foo", COMMANDS) == expected
    assert answer_command("foo", "", CTX) == expected
    assert len(expected.splitlines()) == 2
