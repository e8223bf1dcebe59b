"""The router: every row of the spec's routing table, every ignore reason, and robustness."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmthreads.core.auth import Authorization
from mmthreads.core.commands import COMMANDS, CommandSpec, CommandTable, Lane
from mmthreads.core.router import (
    Ignored,
    IgnoreReason,
    Prompt,
    RefusePrompt,
    Route,
    RunCommand,
    SenderInfo,
    SessionEnded,
    UnknownCommand,
    UnknownThread,
    route,
)
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping
from mmthreads.wire.mattermost import Post

BOT = "bot0000000000000000000000a"
OWNER = "owner000000000000000000000"
OWNER_2 = "owner200000000000000000000"
STRANGER = "stranger000000000000000000"
DM = "dm00000000000000000000000a"
DM_2 = "dm20000000000000000000000a"
ELSEWHERE = "town0000000000000000000000"

AUTH = Authorization(
    owner_user_ids=frozenset({OWNER, OWNER_2}),
    bot_user_id=BOT,
    dm_channel_ids=frozenset({DM, DM_2}),
)


class DictLookup:
    """A plain dict behind the router's ``ThreadLookup`` protocol."""

    def __init__(self, by_root: dict[str, ThreadMapping]) -> None:
        self.by_root = by_root

    def by_thread_root(self, post_id: str, /) -> ThreadMapping | None:
        return self.by_root.get(post_id)


def mapping(
    root: str, status: ThreadState, *, user: str = OWNER, channel: str = DM
) -> ThreadMapping:
    return ThreadMapping(
        session_id=f"ses_{root}",
        thread_root_post_id=root,
        short_id="ses_abcd",
        mattermost_user_id=user,
        dm_channel_id=channel,
        project_name="proj",
        directory="/home/dev/proj",
        status=status,
        created_at="2026-01-15T14:30:00.000Z",
        last_activity_at="2026-01-15T14:30:00.000Z",
    )


THREADS = DictLookup(
    {
        "root_active": mapping("root_active", ThreadState.ACTIVE),
        "root_disconnected": mapping("root_disconnected", ThreadState.DISCONNECTED),
        "root_ended": mapping("root_ended", ThreadState.ENDED),
        "root_orphaned": mapping("root_orphaned", ThreadState.ORPHANED),
        "root_foreign": mapping("root_foreign", ThreadState.ACTIVE, user=OWNER_2),
        "root_elsewhere": mapping("root_elsewhere", ThreadState.ACTIVE, channel=DM_2),
    }
)


def post(message: str = "hello", **fields: Any) -> Post:
    values: dict[str, Any] = {"id": "post1", "channel_id": DM, "user_id": OWNER, "message": message}
    values.update(fields)
    return Post(**values)


def decide(p: Post, **kwargs: Any) -> Route:
    kwargs.setdefault("threads", THREADS)
    kwargs.setdefault("auth", AUTH)
    return route(p, **kwargs)


# --- the spec's routing table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "command", "args"),
    [
        ("!help", "help", ""),
        ("!sessions", "sessions", ""),
        ("!status", "status", ""),
        ("!SESSIONS", "sessions", ""),
        ("!Status", "status", ""),
        ("  !help \n", "help", ""),
        ("!sessions all  of them", "sessions", "all  of them"),
        ("!help\nmore lines", "help", "more lines"),
    ],
)
def test_main_dm_known_command_runs(message: str, command: str, args: str) -> None:
    p = post(message)
    assert decide(p) == RunCommand(command=command, args=args, post=p)


@pytest.mark.parametrize(
    "message", ["hello", "please fix the tests", "! help", "!", "!!help", "x !help"]
)
def test_main_dm_other_text_is_refused(message: str) -> None:
    p = post(message)
    assert decide(p) == RefusePrompt(post=p)


def test_main_dm_files_without_text_are_refused() -> None:
    p = post("", file_ids=["file1"])
    assert decide(p) == RefusePrompt(post=p)


@pytest.mark.parametrize(
    ("message", "name"), [("!foo", "foo"), ("!Sesions", "sesions"), ("!x y", "x")]
)
def test_main_dm_unknown_command(message: str, name: str) -> None:
    p = post(message)
    assert decide(p) == UnknownCommand(command=name, post=p)


def test_thread_of_no_session_is_not_recognized() -> None:
    p = post("hi", root_id="some_other_root")
    assert decide(p) == UnknownThread(post=p)


def test_mapping_of_another_channel_does_not_own_the_thread() -> None:
    p = post("hi", root_id="root_elsewhere")
    assert decide(p) == UnknownThread(post=p)


@pytest.mark.parametrize("root", ["root_ended", "root_orphaned"])
def test_thread_of_a_finished_session_answers_session_ended(root: str) -> None:
    p = post("one more thing", root_id=root)
    assert decide(p) == SessionEnded(post=p, session_id=f"ses_{root}")


@pytest.mark.parametrize("root", ["root_active", "root_disconnected"])
def test_reply_in_a_live_session_thread_is_a_prompt(root: str) -> None:
    p = post("run the tests", id="reply7", root_id=root, file_ids=["f1", "f2"])
    assert decide(p) == Prompt(
        session_id=f"ses_{root}", text="run the tests", file_ids=("f1", "f2"), post_id="reply7"
    )


def test_prompt_text_is_forwarded_unchanged() -> None:
    text = "  keep *this*  exactly\n\n```py\nx = 1\n```  "
    assert decide(post(text, root_id="root_active")) == Prompt(
        session_id="ses_root_active", text=text, file_ids=(), post_id="post1"
    )


@pytest.mark.parametrize("message", ["!sessions", "!help", "!status", "!foo"])
def test_main_dm_commands_are_prompts_inside_a_thread(message: str) -> None:
    assert decide(post(message, root_id="root_active")) == Prompt(
        session_id="ses_root_active", text=message, file_ids=(), post_id="post1"
    )


# --- ignored posts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": BOT}, IgnoreReason.OWN_POST),
        ({"user_id": BOT, "props": {"from_bot": "true"}}, IgnoreReason.OWN_POST),
        ({"user_id": "otherbot", "props": {"from_bot": "true"}}, IgnoreReason.OTHER_BOT),
        ({"props": {"from_bot": True}}, IgnoreReason.OTHER_BOT),
        ({"type": "system_join_channel"}, IgnoreReason.SYSTEM_POST),
        ({"type": "system_header_change", "user_id": STRANGER}, IgnoreReason.SYSTEM_POST),
        ({"props": {"from_webhook": "true"}}, IgnoreReason.WEBHOOK),
        ({"user_id": STRANGER}, IgnoreReason.NOT_AUTHORIZED),
        ({"user_id": ""}, IgnoreReason.NOT_AUTHORIZED),
        ({"channel_id": ELSEWHERE}, IgnoreReason.OTHER_CHANNEL),
        ({"delete_at": 1768487400000}, IgnoreReason.DELETED),
        ({"edit_at": 1768487400000}, IgnoreReason.EDITED),
        ({"message": "  \n "}, IgnoreReason.EMPTY),
        ({"root_id": "root_foreign"}, IgnoreReason.FOREIGN_SESSION),
    ],
)
def test_ignored_posts(fields: dict[str, Any], reason: IgnoreReason) -> None:
    assert decide(post(**fields)) == Ignored(reason=reason)


def test_a_stranger_is_ignored_even_with_a_command_in_the_owners_dm() -> None:
    assert decide(post("!sessions", user_id=STRANGER)) == Ignored(
        reason=IgnoreReason.NOT_AUTHORIZED
    )


def test_an_owner_outside_the_bots_dms_is_ignored() -> None:
    assert decide(post("!help", channel_id=ELSEWHERE)) == Ignored(reason=IgnoreReason.OTHER_CHANNEL)
    not_a_dm = SenderInfo(channel_type="O", sender_name="@owner")
    assert decide(post("!help"), sender=not_a_dm) == Ignored(reason=IgnoreReason.OTHER_CHANNEL)
    a_dm = SenderInfo(channel_type="D", sender_name="@owner")
    assert decide(post("!help"), sender=a_dm) == RunCommand(
        command="help", args="", post=post("!help")
    )


@pytest.mark.parametrize(
    "auth",
    [
        Authorization(),
        Authorization(bot_user_id=BOT, dm_channel_ids=frozenset({DM})),
        Authorization(owner_user_ids=frozenset({OWNER}), dm_channel_ids=frozenset({DM})),
    ],
)
@pytest.mark.parametrize(
    "p", [post("!help"), post("hello"), post("go", root_id="root_active"), post(user_id=BOT)]
)
def test_fail_closed_without_owner_or_bot_id(auth: Authorization, p: Post) -> None:
    assert not auth.configured
    assert decide(p, auth=auth) == Ignored(reason=IgnoreReason.NOT_CONFIGURED)


def test_authorization_configured() -> None:
    assert AUTH.configured


# --- the command table shapes routing -----------------------------------------------------------


def _model_command(args: str, ctx: object, table: CommandTable) -> str:
    return f"model {args}"


WITH_THREAD_COMMAND = CommandTable(
    [
        *COMMANDS.in_lane(Lane.MAIN_DM),
        CommandSpec(name="model", lane=Lane.SESSION_THREAD, summary="pick", handler=_model_command),
    ]
)


def test_a_session_thread_command_runs_only_inside_a_live_thread() -> None:
    in_thread = post("!Model openai/gpt-5", root_id="root_active")
    assert decide(in_thread, commands=WITH_THREAD_COMMAND) == RunCommand(
        command="model", args="openai/gpt-5", post=in_thread, session_id="ses_root_active"
    )
    in_main = post("!model openai/gpt-5")
    assert decide(in_main, commands=WITH_THREAD_COMMAND) == UnknownCommand(
        command="model", post=in_main
    )
    in_ended = post("!model x", root_id="root_ended")
    assert decide(in_ended, commands=WITH_THREAD_COMMAND) == SessionEnded(
        post=in_ended, session_id="ses_root_ended"
    )
    # Main-DM commands stay prompts inside threads, whatever else the table holds.
    assert isinstance(
        decide(post("!help", root_id="root_active"), commands=WITH_THREAD_COMMAND), Prompt
    )


def test_the_model_commands_are_session_thread_commands() -> None:
    for text, name, args in [("!models", "models", ""), ("!MODEL 2", "model", "2")]:
        in_thread = post(text, root_id="root_active")
        assert decide(in_thread) == RunCommand(
            command=name, args=args, post=in_thread, session_id="ses_root_active"
        )
        assert decide(post(text)) == UnknownCommand(command=name, post=post(text))


# --- robustness ---------------------------------------------------------------------------------


def test_routes_are_a_tagged_union() -> None:
    prompt = decide(post("go", root_id="root_active"))
    encoded = msgspec.json.encode(prompt)
    assert encoded.startswith(b'{"type":"Prompt",')
    assert msgspec.json.decode(encoded, type=Route) == prompt
    ignored = decide(post(user_id=BOT))
    assert msgspec.json.decode(msgspec.json.encode(ignored), type=Route) == ignored
    assert msgspec.json.encode(ignored) == b'{"type":"Ignored","reason":"own post"}'


@pytest.mark.parametrize(
    "fields",
    [
        {"message": None},
        {"props": ["not", "a", "dict"]},
        {"user_id": ["unhashable"]},
        {"type": 5},
        {"file_ids": None, "root_id": "root_active"},
    ],
)
def test_wrongly_typed_posts_are_ignored_as_malformed(fields: dict[str, Any]) -> None:
    assert decide(post(**fields)) == Ignored(reason=IgnoreReason.MALFORMED)


_IDS = st.sampled_from([BOT, OWNER, OWNER_2, STRANGER, DM, DM_2, ELSEWHERE, "", "root_active"])
_ROOTS = st.sampled_from(["", *THREADS.by_root, "unknown"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_PROPS = st.dictionaries(
    st.sampled_from(["from_bot", "from_webhook", "attachments", "x"]) | st.text(max_size=6), _JSON
)
_POSTS = st.builds(
    Post,
    id=st.text(max_size=30),
    channel_id=_IDS | st.text(max_size=30),
    user_id=_IDS | st.text(max_size=30),
    message=st.text(max_size=40) | st.sampled_from(["!help", "!SESSIONS x", "!foo", " !status"]),
    root_id=_ROOTS | st.text(max_size=30),
    type=st.sampled_from(["", "system_join_channel", "custom_x", "me"]) | st.text(max_size=12),
    create_at=st.integers(),
    update_at=st.integers(),
    edit_at=st.integers(),
    delete_at=st.integers(),
    props=_PROPS,
    file_ids=st.lists(st.text(max_size=10), max_size=3),
)
_ROUTE_TYPES = (
    Ignored,
    RunCommand,
    UnknownCommand,
    RefusePrompt,
    UnknownThread,
    SessionEnded,
    Prompt,
)


@settings(max_examples=200)
@given(
    p=_POSTS,
    sender=st.none()
    | st.builds(SenderInfo, channel_type=st.text(max_size=2), sender_name=st.text()),
)
def test_route_never_raises_and_decides_exactly_one_route(
    p: Post, sender: SenderInfo | None
) -> None:
    decision = decide(p, sender=sender)
    assert isinstance(decision, _ROUTE_TYPES)
    # Anything routed past the ignore checks came from an owner, in one of the bot's DMs.
    if not isinstance(decision, Ignored):
        assert p.user_id in AUTH.owner_user_ids
        assert p.channel_id in AUTH.dm_channel_ids


@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            name: _JSON
            for name in ("channel_id", "user_id", "message", "root_id", "type", "props", "file_ids")
        },
    )
)
def test_route_never_raises_on_wrongly_typed_fields(values: dict[str, Any]) -> None:
    decision = decide(Post(id="p", **{"channel_id": DM, "user_id": OWNER, **values}))
    assert isinstance(decision, _ROUTE_TYPES)
