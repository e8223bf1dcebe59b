"""Thread and channel queries: paging as Client4 asks, and ``since`` for catching up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mmthreads.harness.mattermost import AppError
from mmthreads.harness.mattermost.posts import PostPatch

if TYPE_CHECKING:
    from .conftest import FakeClock, World


def _thread(world: World, replies: int) -> tuple[str, list[str]]:
    root = world.post(world.alice, "root")
    ids = [world.post(world.bot, f"r{i}", root_id=root.id).id for i in range(replies)]
    return root.id, ids


def test_thread_without_paging_returns_everything_newest_first(world: World) -> None:
    root, replies = _thread(world, 70)
    for any_post in (root, replies[10]):
        result = world.state.thread(world.alice.id, any_post)
        assert result.order == list(reversed([root, *replies]))
        assert set(result.posts) == {root, *replies}
        assert result.has_next is False


@pytest.mark.parametrize("direction", ["down", "up"])
def test_thread_cursor_paging_reaches_every_post(world: World, direction: str) -> None:
    root, replies = _thread(world, 150)
    expected = [root, *replies] if direction == "down" else list(reversed([root, *replies]))
    seen: list[str] = []
    kwargs: dict[str, Any] = {}
    for _ in range(10):
        page = world.state.thread(world.alice.id, root, per_page=60, direction=direction, **kwargs)
        assert root in page.posts  # the root always comes along
        seen += page.order
        if not page.has_next:
            break
        last = page.posts[page.order[-1]]
        kwargs = {"from_post": last.id, "from_create_at": last.create_at}
    assert seen == expected


def test_thread_first_page_as_client4_asks(world: World) -> None:
    root, replies = _thread(world, 100)
    page = world.state.thread(world.alice.id, root, per_page=60, direction="down")
    assert page.order == [root, *replies[:59]]
    assert page.has_next is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_page": 201},
        {"from_post": "p" * 26},
        {"direction": "sideways"},
        {"updates_only": True},
        {"from_update_at": 5, "from_create_at": 5},
        {"updates_only": True, "from_update_at": 5, "direction": "up"},
    ],
)
def test_thread_parameter_errors(world: World, kwargs: dict[str, object]) -> None:
    root, _ = _thread(world, 1)
    with pytest.raises(AppError) as info:
        world.state.thread(world.alice.id, root, **kwargs)  # type: ignore[arg-type]
    assert (info.value.status, info.value.id) == (400, "api.context.invalid_param.app_error")


def test_thread_updates_only(world: World, clock: FakeClock) -> None:
    root, replies = _thread(world, 3)
    clock.advance(1000)
    mark = clock.now
    clock.advance(1000)
    world.state.patch_post(world.bot.id, replies[1], PostPatch(message="edited"))
    page = world.state.thread(world.alice.id, root, from_update_at=mark, updates_only=True)
    assert page.order == [replies[1]]


def test_channel_pages_are_newest_first_with_thread_roots(world: World) -> None:
    root = world.post(world.alice, "root").id
    posts = [world.post(world.bot, f"p{i}", root_id=root if i % 2 else "").id for i in range(9)]
    everything = list(reversed([root, *posts]))
    first = world.state.channel_posts(world.alice.id, world.dm, page=0, per_page=4)
    second = world.state.channel_posts(world.alice.id, world.dm, page=1, per_page=4)
    assert first.order == everything[:4]
    assert second.order == everything[4:8]
    assert root in first.posts
    assert root not in first.order
    assert (first.next_post_id, first.prev_post_id) == ("", everything[4])
    assert second.next_post_id == everything[3]


def test_channel_before_and_after_cursors(world: World) -> None:
    ids = [world.post(world.alice, f"p{i}").id for i in range(10)]
    before = world.state.channel_posts(world.alice.id, world.dm, before=ids[5], per_page=3)
    after = world.state.channel_posts(world.alice.id, world.dm, after=ids[5], per_page=3)
    assert before.order == [ids[4], ids[3], ids[2]]
    assert after.order == [ids[8], ids[7], ids[6]]


def test_since_returns_new_edited_and_deleted_posts_and_touched_roots(
    world: World, clock: FakeClock
) -> None:
    state = world.state
    untouched = world.post(world.alice, "old")
    root = world.post(world.alice, "root")
    edited = world.post(world.bot, "edited later")
    deleted = world.post(world.bot, "deleted later")
    clock.advance(1000)
    since = clock.now
    clock.advance(1000)
    state.patch_post(world.bot.id, edited.id, PostPatch(message="new text"))
    state.delete_post(world.bot.id, deleted.id)
    reply = world.post(world.bot, "reply", root_id=root.id)
    result = state.channel_posts(world.alice.id, world.dm, since=since)
    assert set(result.order) == {root.id, edited.id, deleted.id, reply.id}
    assert untouched.id not in result.posts
    assert result.posts[deleted.id].delete_at > 0
    assert result.posts[edited.id].message == "new text"
    assert result.posts[edited.id].edit_at > since


def test_since_includes_reaction_changes(world: World, clock: FakeClock) -> None:
    post = world.post(world.alice, "x")
    clock.advance(1000)
    since = clock.now
    clock.advance(1000)
    world.state.save_reaction(world.bot.id, world.bot.id, post.id, "eyes")
    result = world.state.channel_posts(world.alice.id, world.dm, since=since)
    assert result.order == [post.id]
    assert result.posts[post.id].has_reactions is True


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"before": "bad"}, (400, "api.context.invalid_param.app_error")),
        ({"after": "bad"}, (400, "api.context.invalid_param.app_error")),
        ({"include_deleted": True}, (403, "api.context.permissions.app_error")),
        ({"channel": "bob"}, (403, "api.context.permissions.app_error")),
        ({"channel": "missing"}, (404, "app.channel.get.existing.app_error")),
    ],
)
def test_channel_posts_errors(
    world: World, kwargs: dict[str, Any], expected: tuple[int, str]
) -> None:
    channel = {"bob": world.dm_bob, "missing": "m" * 26}.get(
        str(kwargs.pop("channel", "")), world.dm
    )
    with pytest.raises(AppError) as info:
        world.state.channel_posts(world.alice.id, channel, **kwargs)
    assert (info.value.status, info.value.id) == expected
