"""The emulator's sans-IO state: plain synchronous, table-driven tests (no Trio, no server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import pytest

from mmthreads.harness.mattermost import AppError, Limits, MattermostState
from mmthreads.harness.mattermost.ids import ID_ALPHABET, is_valid_id
from mmthreads.harness.mattermost.models import decode_post
from mmthreads.harness.mattermost.posts import CreatePost, PostPatch, PostUpdate

if TYPE_CHECKING:
    from .conftest import FakeClock, World


def _error(fn, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(AppError) as info:
        fn(*args, **kwargs)
    return info.value.status, info.value.id


# -- accounts and direct channels --------------------------------------------------------


def test_ids_use_the_mattermost_alphabet(world: World) -> None:
    for account in (world.bot, world.alice, world.bob):
        assert len(account.id) == 26
        assert set(account.id) <= set(ID_ALPHABET)
        assert is_valid_id(account.id)
    assert not is_valid_id("A" * 26)


def test_direct_channel_is_find_or_create_with_a_sorted_name(world: World) -> None:
    state = world.state
    again = state.direct_channel(world.bot.id, [world.bot.id, world.alice.id])
    assert again.id == world.dm
    assert again.name == "__".join(sorted((world.bot.id, world.alice.id)))
    assert (again.type, again.team_id, again.display_name) == ("D", "", "")
    assert state.take_events() == []  # direct_added only on creation


def test_first_creation_broadcasts_direct_added(clock: FakeClock) -> None:
    state = MattermostState(clock=clock)
    a = state.create_user("a")
    b = state.create_user("b")
    channel = state.direct_channel(a.id, [b.id, a.id])
    [event] = state.take_events()
    assert event.event == "direct_added"
    assert event.data == {"creator_id": a.id, "teammate_id": b.id}
    assert event.broadcast.channel_id == channel.id


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["me"], (400, "api.context.invalid_param.app_error")),
        (["me", "me", "me"], (400, "api.context.invalid_param.app_error")),
        (["me", "not-an-id"], (400, "api.context.invalid_param.app_error")),
        (["bob", "bot"], (403, "api.context.permissions.app_error")),
        (["me", "x" * 26], (404, "app.user.missing_account.const")),
    ],
)
def test_direct_channel_errors(world: World, ids: list[str], expected: tuple[int, str]) -> None:
    names = {"me": world.alice.id, "bob": world.bob.id, "bot": world.bot.id}
    resolved = [names.get(i, i) for i in ids]
    assert _error(world.state.direct_channel, world.alice.id, resolved) == expected


def test_other_users_are_sanitized(world: World) -> None:
    own = world.state.user_view(world.alice.id, actor=world.alice.id)
    other = world.state.user_view(world.alice.id, actor=world.bot.id)
    assert own.notify_props
    assert "notify_props" in msgspec.json.decode(msgspec.json.encode(own))
    assert "notify_props" not in msgspec.json.decode(msgspec.json.encode(other))
    bot = msgspec.json.decode(msgspec.json.encode(world.state.users[world.bot.id]))
    assert bot["is_bot"] is True
    assert "is_bot" not in msgspec.json.decode(msgspec.json.encode(own))


# -- creating posts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("root_missing", (400, "api.post.create_post.root_id.app_error")),
        ("root_deleted", (400, "api.post.create_post.root_id.app_error")),
        ("root_is_reply", (400, "api.post.create_post.root_id.app_error")),
        ("root_other_channel", (400, "api.post.create_post.channel_root_id.app_error")),
        ("too_long", (400, "model.post.is_valid.message_length.app_error")),
        ("too_long_4_byte", (400, "model.post.is_valid.message_length.app_error")),
        ("system_type", (400, "api.context.invalid_param.app_error")),
        ("unknown_type", (400, "model.post.is_valid.type.app_error")),
        ("not_a_member", (403, "api.context.permissions.app_error")),
        ("unknown_channel", (403, "api.context.permissions.app_error")),
    ],
)
def test_create_post_errors(world: World, case: str, expected: tuple[int, str]) -> None:
    root = world.post(world.alice, "root")
    reply = world.post(world.alice, "reply", root_id=root.id)
    gone = world.post(world.alice, "gone")
    world.state.delete_post(world.alice.id, gone.id)
    other_root = world.post(world.bob, "elsewhere", channel=world.dm_bob)
    body = CreatePost(channel_id=world.dm, message="hi")
    match case:
        case "root_missing":
            body.root_id = "y" * 26
        case "root_deleted":
            body.root_id = gone.id
        case "root_is_reply":
            body.root_id = reply.id
        case "root_other_channel":
            body.root_id = other_root.id
        case "too_long":
            body.message = "a" * 16384
        case "too_long_4_byte":
            body.message = "\N{GRINNING FACE}" * 16384
        case "system_type":
            body.type = "system_join_channel"
        case "unknown_type":
            body.type = "weird"
        case "not_a_member":
            body.channel_id = world.dm_bob
        case "unknown_channel":
            body.channel_id = "z" * 26
    before = len(world.state.posts)
    assert _error(world.state.create_post, world.alice.id, body) == expected
    assert len(world.state.posts) == before


@pytest.mark.parametrize(
    "message",
    ["a" * 16383, "\u00e9" * 16383, "\N{GRINNING FACE}" * 16383, ""],
    ids=["ascii", "2-byte", "4-byte", "empty"],
)
def test_rune_limit_counts_code_points_not_bytes(world: World, message: str) -> None:
    post = world.post(world.alice, message)
    assert post.message == message


def test_props_limit() -> None:
    state = MattermostState(limits=Limits(max_props_runes=50))
    a = state.create_user("a")
    channel = state.direct_channel(a.id, [a.id, state.create_user("b").id])
    body = CreatePost(channel_id=channel.id, props={"k": "v" * 60})
    assert _error(state.create_post, a.id, body) == (400, "model.post.is_valid.props.app_error")


def test_bots_get_from_bot_and_props_round_trip(world: World) -> None:
    props = {"session": "ses_1", "nested": {"n": 1}}
    by_bot = world.post(world.bot, "from the bot", props=props)
    by_alice = world.post(world.alice, "from alice", props=props)
    assert by_bot.props == {**props, "from_bot": "true"}
    assert by_alice.props == props
    assert by_bot.metadata == by_bot.metadata.__class__()  # "metadata": {}


def test_custom_types_are_accepted(world: World) -> None:
    assert world.post(world.alice, "x", type="custom_llm").type == "custom_llm"


def test_file_ids_are_deduplicated_and_unattachable_ones_dropped(world: World) -> None:
    state = world.state
    mine = state.upload_file(world.alice.id, world.dm, "a.txt", b"a")
    theirs = state.upload_file(world.bot.id, world.dm, "b.txt", b"b")
    post = world.post(world.alice, "files", file_ids=[mine.id, mine.id, theirs.id, "q" * 26])
    assert post.file_ids == [mine.id]
    assert post.metadata.files == [state.files[mine.id]]
    assert state.files[mine.id].post_id == post.id
    assert state.files[theirs.id].post_id == ""


def test_reply_bumps_root_update_at(world: World, clock: FakeClock) -> None:
    root = world.post(world.alice, "root")
    clock.advance(1000)
    reply = world.post(world.bot, "reply", root_id=root.id)
    rendered = world.state.get_post(world.alice.id, root.id)
    assert rendered.update_at == reply.create_at > root.update_at
    assert (rendered.reply_count, rendered.last_reply_at) == (1, reply.create_at)


def test_timestamps_strictly_increase_under_a_frozen_clock(world: World) -> None:
    a = world.post(world.alice, "a")
    b = world.post(world.alice, "b")
    assert b.create_at > a.create_at


# -- editing and deleting ------------------------------------------------------------------


def test_patch_replaces_props_and_sets_edit_at_only_for_message_changes(world: World) -> None:
    state = world.state
    post = world.post(world.bot, "draft", props={"a": "1", "b": "2"})
    patched = state.patch_post(world.bot.id, post.id, PostPatch(props={"c": "3"}))
    assert patched.props == {"c": "3"}
    assert patched.edit_at == 0
    assert patched.update_at > post.update_at
    edited = state.patch_post(world.bot.id, post.id, PostPatch(message="final"))
    assert (edited.message, edited.props) == ("final", {"c": "3"})
    assert edited.edit_at == edited.update_at > patched.update_at
    events = [e.event for e in state.take_events()]
    assert events == ["posted", "post_edited", "post_edited"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("someone_else", (403, "api.context.permissions.app_error")),
        ("missing", (403, "api.context.permissions.app_error")),
        ("too_long", (400, "model.post.is_valid.message_length.app_error")),
    ],
)
def test_patch_errors(world: World, case: str, expected: tuple[int, str]) -> None:
    post = world.post(world.bot, "x")
    actor, post_id, patch = world.bot.id, post.id, PostPatch(message="y")
    if case == "someone_else":
        actor = world.alice.id
    elif case == "missing":
        post_id = "m" * 26
    else:
        patch.message = "z" * 16384
    assert _error(world.state.patch_post, actor, post_id, patch) == expected


def test_full_update_needs_the_id_and_keeps_files(world: World) -> None:
    state = world.state
    info = state.upload_file(world.bot.id, world.dm, "f.txt", b"f")
    post = world.post(world.bot, "x", file_ids=[info.id])
    wrong = PostUpdate(id="w" * 26, message="y")
    assert _error(state.update_post, world.bot.id, post.id, wrong) == (
        400,
        "api.context.invalid_param.app_error",
    )
    updated = state.update_post(world.bot.id, post.id, PostUpdate(id=post.id, message="y"))
    assert (updated.message, updated.file_ids) == ("y", [info.id])


def test_deleting_a_root_deletes_its_replies_with_one_event(world: World, clock: FakeClock) -> None:
    state = world.state
    root = world.post(world.alice, "root")
    replies = [world.post(world.bot, f"r{i}", root_id=root.id) for i in range(3)]
    other = world.post(world.alice, "unrelated")
    state.take_events()
    clock.advance(5000)
    state.delete_post(world.alice.id, root.id)
    [event] = state.take_events()
    assert event.event == "post_deleted"
    assert event.broadcast.contains_sanitized_data is True
    assert decode_post(event.data["post"]).id == root.id
    for post in [root, *replies]:
        stored = state.posts[post.id]
        assert stored.delete_at == stored.update_at == clock.now
        assert stored.props["deleteBy"] == world.alice.id
        assert _error(state.get_post, world.alice.id, post.id) == (404, "app.post.get.app_error")
    assert state.posts[other.id].delete_at == 0
    assert _error(state.thread, world.alice.id, root.id) == (404, "app.post.get.app_error")


def test_deleting_a_reply_leaves_the_thread(world: World) -> None:
    root = world.post(world.alice, "root")
    reply = world.post(world.bot, "reply", root_id=root.id)
    world.state.delete_post(world.bot.id, reply.id)
    assert world.state.thread(world.alice.id, root.id).order == [root.id]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("someone_else", (403, "api.context.permissions.app_error")),
        ("twice", (404, "app.post.get.app_error")),
        ("malformed", (400, "api.context.invalid_url_param.app_error")),
    ],
)
def test_delete_errors(world: World, case: str, expected: tuple[int, str]) -> None:
    post = world.post(world.alice, "x")
    if case == "twice":
        world.state.delete_post(world.alice.id, post.id)
    actor = world.bot.id if case == "someone_else" else world.alice.id
    post_id = "nope" if case == "malformed" else post.id
    assert _error(world.state.delete_post, actor, post_id) == expected


# -- reactions -----------------------------------------------------------------------------

BOT_EMOJI = [
    "white_check_mark", "x", "octagonal_sign", "repeat", "infinity", "eyes",
    "hourglass_flowing_sand", "heavy_check_mark", "warning", "+1", "thumbsup",
    "wastebasket", "arrows_counterclockwise", "no_entry", "recycle",
]  # fmt: skip


@pytest.mark.parametrize("emoji", BOT_EMOJI)
def test_reactions_the_bot_uses_are_system_emoji(world: World, emoji: str) -> None:
    post = world.post(world.alice, "x")
    reaction = world.state.save_reaction(world.bot.id, world.bot.id, post.id, emoji)
    assert (reaction.emoji_name, reaction.channel_id) == (emoji, world.dm)
    assert world.state.get_post(world.alice.id, post.id).has_reactions is True


@pytest.mark.parametrize(
    ("emoji", "user", "expected"),
    [
        ("stop_sign", "bot", (404, "app.emoji.get_by_name.no_result")),
        ("", "bot", (400, "api.reaction.save_reaction.invalid.app_error")),
        ("a" * 65, "bot", (400, "api.reaction.save_reaction.invalid.app_error")),
        ("eyes", "alice", (403, "api.reaction.save_reaction.user_id.app_error")),
        ("eyes", "bad", (400, "api.reaction.save_reaction.invalid.app_error")),
    ],
)
def test_reaction_errors(world: World, emoji: str, user: str, expected: tuple[int, str]) -> None:
    post = world.post(world.alice, "x")
    user_id = {"bot": world.bot.id, "alice": world.alice.id, "bad": "bad"}[user]
    assert _error(world.state.save_reaction, world.bot.id, user_id, post.id, emoji) == expected


def test_reactions_are_idempotent_and_bump_update_at(world: World, clock: FakeClock) -> None:
    state = world.state
    post = world.post(world.alice, "x")
    state.take_events()
    stamps = [post.update_at]
    for _ in range(2):
        clock.advance(10)
        state.save_reaction(world.bot.id, world.bot.id, post.id, "eyes")
        stamps.append(state.posts[post.id].update_at)
    assert len(state.reactions_for(world.alice.id, post.id)) == 1
    clock.advance(10)
    state.delete_reaction(world.bot.id, world.bot.id, post.id, "eyes")
    stamps.append(state.posts[post.id].update_at)
    assert stamps == sorted(set(stamps))
    assert state.get_post(world.alice.id, post.id).has_reactions is msgspec.UNSET
    events = state.take_events()
    assert [e.event for e in events] == ["reaction_added"] * 2 + ["reaction_removed"]
    removed = msgspec.json.decode(events[-1].data["reaction"])
    assert removed["delete_at"] > 0
    assert removed["emoji_name"] == "eyes"


def test_unique_emoji_limit(clock: FakeClock) -> None:
    state = MattermostState(clock=clock, limits=Limits(unique_reactions_per_post=2))
    a = state.create_user("a")
    b = state.create_user("b")
    dm = state.direct_channel(a.id, [a.id, b.id])
    post = state.create_post(a.id, CreatePost(channel_id=dm.id, message="x"))
    state.save_reaction(a.id, a.id, post.id, "eyes")
    state.save_reaction(b.id, b.id, post.id, "x")
    state.save_reaction(b.id, b.id, post.id, "eyes")  # an existing emoji is still fine
    assert _error(state.save_reaction, a.id, a.id, post.id, "repeat") == (
        400,
        "app.reaction.save.save.too_many_reactions",
    )


# -- events --------------------------------------------------------------------------------


def test_posted_event_double_encodes_the_post_and_mentions_the_other_member(world: World) -> None:
    state = world.state
    post = world.post(world.alice, "hello")
    [event] = state.take_events()
    assert event.event == "posted"
    assert isinstance(event.data["post"], str)
    assert decode_post(event.data["post"]) == post
    assert event.data["channel_type"] == "D"
    assert event.data["sender_name"] == event.data["channel_display_name"] == "@alice"
    assert event.data_for(world.bot.id)["mentions"] == f'["{world.bot.id}"]'
    assert "mentions" not in event.data_for(world.alice.id)
    reply = world.post(world.bot, "hi", root_id=post.id)
    [event] = state.take_events()
    assert "mentions" in event.data_for(world.alice.id)
    assert decode_post(event.data["post"]).root_id == post.id == reply.root_id


def test_typing_omits_the_typer(world: World) -> None:
    world.state.publish_typing(world.bot.id, world.dm, "p" * 26)
    [event] = world.state.take_events()
    assert event.event == "typing"
    assert event.broadcast.omit_users == {world.bot.id: True}
    assert event.data == {"parent_id": "p" * 26, "user_id": world.bot.id}
    assert _error(world.state.publish_typing, world.bot.id, world.dm_bob + "x") == (
        400,
        "api.context.invalid_param.app_error",
    )
    assert _error(world.state.publish_typing, world.alice.id, world.dm_bob) == (
        403,
        "api.context.permissions.app_error",
    )
