"""The outbox: order per lane, urgent first, coalesced edits, nothing lost in outages or 429s.

Every test runs on ``autojump_clock`` against an in-memory Mattermost that can be told to fail.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import trio

from mmthreads.adapters.mattermost_http import RateLimitStatus
from mmthreads.errors import ChatRateLimited, ChatRequestError, ChatUnavailable
from mmthreads.runtime.outbox import MARKER_PROP, Outbox, PostRef, Priority

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio.testing import MockClock

    from mmthreads.adapters.mattermost_rest import MattermostClient


@dataclass
class _Post:
    id: str
    channel_id: str
    root_id: str
    message: str
    props: dict[str, object]


@dataclass
class _Posts:
    posts: list[_Post]

    def in_order(self) -> list[_Post]:
        return self.posts


@dataclass
class _Chat:
    """Mattermost in memory: what was written, when, and failures to play."""

    posts: dict[str, _Post] = field(default_factory=dict)
    log: list[tuple[float, str, str, str]] = field(default_factory=list)  # (time, op, id, text)
    reactions: list[tuple[str, str]] = field(default_factory=list)
    fail_until: float = 0.0  # unreachable until this trio time
    failures: list[Exception] = field(default_factory=list)  # raised by the next calls, in turn
    lost_answers: int = 0  # creates that succeed but answer with an error
    latency: float = 0.01
    rate_limit: RateLimitStatus | None = None
    ids: itertools.count[int] = field(default_factory=itertools.count)

    async def _enter(self) -> None:
        await trio.sleep(self.latency)
        if trio.current_time() < self.fail_until:
            raise ChatUnavailable("connection refused")
        if self.failures:
            raise self.failures.pop(0)

    async def create_post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: Mapping[str, object] | None = None,
        file_ids: tuple[str, ...] = (),
    ) -> _Post:
        await self._enter()
        post = _Post(f"p{next(self.ids)}", channel_id, root_id, message, dict(props or {}))
        self.posts[post.id] = post
        self.log.append((trio.current_time(), "create", post.id, message))
        if self.lost_answers:
            self.lost_answers -= 1
            raise ChatUnavailable("read timeout", maybe_done=True)
        return post

    async def patch_post(
        self, post_id: str, *, message: str | None = None, props: Mapping[str, object] | None = None
    ) -> _Post:
        await self._enter()
        post = self.posts[post_id]
        if message is not None:
            post.message = message
        self.log.append((trio.current_time(), "edit", post_id, post.message))
        return post

    async def add_reaction(self, user_id: str, post_id: str, emoji: str) -> None:
        await self._enter()
        self.reactions.append((post_id, emoji))
        self.log.append((trio.current_time(), "react", post_id, emoji))

    async def get_posts_since(self, channel_id: str, since_ms: int) -> _Posts:
        await self._enter()
        return _Posts([p for p in self.posts.values() if p.channel_id == channel_id])

    def texts(self, root_id: str) -> list[str]:
        return [p.message for p in self.posts.values() if p.root_id == root_id]


def _outbox(chat: _Chat, *, workers: int = 2) -> Outbox:
    return Outbox(cast("MattermostClient", chat), workers=workers, clock_ms=lambda: 1_000_000)


async def _running(nursery: trio.Nursery, outbox: Outbox) -> None:
    await nursery.start(outbox.run)


async def test_a_lane_keeps_its_order_and_edits_coalesce(autojump_clock: MockClock) -> None:
    chat = _Chat()
    outbox = _outbox(chat)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        answer = outbox.post("dm", "thinking…", root_id="root")
        for n in range(1, 6):  # all queued while the create is still in flight
            outbox.edit("root", answer, message=f"part {n}")
        outbox.post("dm", "notice", root_id="root")
        await outbox.drain()
        nursery.cancel_scope.cancel()
    assert chat.texts("root") == ["part 5", "notice"]
    edits = [entry for entry in chat.log if entry[1] == "edit"]
    assert [text for *_, text in edits] == ["part 5"]  # five edits became one
    assert [op for _, op, _, _ in chat.log] == ["create", "edit", "create"]


async def test_urgent_lanes_go_before_progress(autojump_clock: MockClock) -> None:
    chat = _Chat()
    outbox = _outbox(chat, workers=1)
    refs = [PostRef(f"a{n}") for n in range(3)]
    chat.posts.update({r.id: _Post(r.id, "dm", "", "", {}) for r in refs if r.id is not None})
    async with trio.open_nursery() as nursery:
        for n, ref in enumerate(refs):
            outbox.edit(f"lane{n}", ref, message=f"progress {n}", priority=Priority.PROGRESS)
        outbox.post("dm", "command reply")  # urgent, enqueued last
        await _running(nursery, outbox)
        await outbox.drain()
        nursery.cancel_scope.cancel()
    order = [text for _, _, _, text in chat.log]
    assert order == ["command reply", "progress 0", "progress 1", "progress 2"]


async def test_an_outage_loses_nothing_and_keeps_order(autojump_clock: MockClock) -> None:
    chat = _Chat(fail_until=300.0)  # Mattermost unreachable for five minutes
    outbox = _outbox(chat, workers=3)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        refs = {}
        for thread in ("t1", "t2", "t3"):
            refs[thread] = outbox.post("dm", f"{thread} answer v1", root_id=thread)
        for version in range(2, 40):
            for thread, ref in refs.items():
                outbox.edit(thread, ref, message=f"{thread} answer v{version}")
            await trio.sleep(5)
        for thread in refs:
            outbox.post("dm", f"{thread} done", root_id=thread)
        await outbox.drain()
        nursery.cancel_scope.cancel()
    for thread in ("t1", "t2", "t3"):
        assert chat.texts(thread) == [f"{thread} answer v39", f"{thread} done"]
    assert min(t for t, *_ in chat.log) >= 300.0
    assert outbox.pending == 0
    assert outbox.failed_writes == 0


async def test_a_429_pauses_every_worker_for_the_time_named(autojump_clock: MockClock) -> None:
    chat = _Chat(failures=[ChatRateLimited(7.0)])
    outbox = _outbox(chat, workers=4)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        start = trio.current_time()
        outbox.post("dm", "first", root_id="a")
        await trio.sleep(0.02)  # "first" has met the 429 and waits
        outbox.post("dm", "second", root_id="b")
        await outbox.drain()
        nursery.cancel_scope.cancel()
    times = {text: t - start for t, _, _, text in chat.log}
    assert times["first"] >= 7.0
    assert times["second"] >= 7.0  # another lane waited too
    assert chat.texts("a") == ["first"]


async def test_a_create_whose_answer_was_lost_is_not_posted_twice(
    autojump_clock: MockClock,
) -> None:
    chat = _Chat(lost_answers=1)
    outbox = _outbox(chat)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        ref = outbox.post("dm", "answer", root_id="r")
        outbox.edit("r", ref, message="answer, edited")
        await outbox.drain()
        nursery.cancel_scope.cancel()
    assert chat.texts("r") == ["answer, edited"]
    assert ref.id is not None
    assert chat.posts[ref.id].props[MARKER_PROP]


async def test_a_refused_create_drops_its_edits_and_reactions(autojump_clock: MockClock) -> None:
    chat = _Chat(failures=[ChatRequestError(400, "api.post.too_long", "too long")])
    outbox = _outbox(chat, workers=1)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        ref = outbox.post("dm", "x" * 10, root_id="r")
        outbox.edit("r", ref, message="y")
        outbox.react("r", ref, "bot", "white_check_mark")
        outbox.post("dm", "after", root_id="r")
        await outbox.drain()
        assert await ref.wait() is None
        nursery.cancel_scope.cancel()
    assert ref.failed
    assert chat.texts("r") == ["after"]
    assert chat.reactions == []
    assert outbox.failed_writes == 1


async def test_workers_wait_for_refill_when_the_bucket_is_nearly_empty(
    autojump_clock: MockClock,
) -> None:
    chat = _Chat()
    chat.rate_limit = RateLimitStatus(limit=11, remaining=1, reset_after=9.0, observed_at=0.0)
    outbox = _outbox(chat, workers=2)
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        outbox.post("dm", "paced")
        await outbox.drain()
        nursery.cancel_scope.cancel()
    # Nine requests used, nine seconds to refill them all: one request's worth is one second.
    ((when, *_),) = chat.log
    assert when >= 1.0


async def test_drain_waits_for_writes_enqueued_meanwhile(autojump_clock: MockClock) -> None:
    chat = _Chat(latency=1.0)
    outbox = _outbox(chat)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        await _running(nursery, outbox)
        outbox.post("dm", "one", root_id="r")

        async def later() -> None:
            await trio.sleep(0.5)
            outbox.post("dm", "two", root_id="r")

        nursery.start_soon(later)
        await trio.sleep(0.1)
        await outbox.drain()
        results.append(chat.texts("r"))
        nursery.cancel_scope.cancel()
    assert results == [["one", "two"]]
