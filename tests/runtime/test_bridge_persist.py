"""The mapping file is written as group commits: a burst of changes costs two writes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

import trio
from trio.testing import wait_all_tasks_blocked

from mmthreads.mapping_index import MappingIndex
from mmthreads.runtime.bridge import Bridge

if TYPE_CHECKING:
    from mmthreads.adapters.mattermost_rest import MattermostClient
    from mmthreads.mapping_store import MappingStore


class _SlowStore:
    """Counts writes; each takes a while (in the worker thread)."""

    def __init__(self) -> None:
        self.writes = 0
        self.release = threading.Event()

    def save(self, mappings: Any, now: float) -> None:
        self.release.wait(5)
        self.writes += 1


def _bridge(store: _SlowStore) -> Bridge:
    return Bridge(
        chat=cast("MattermostClient", object()),
        bot_user_id="bot",
        max_post_size=16383,
        site_url="",
        index=MappingIndex(),
        store=cast("MappingStore", store),
        servers={},
        edit_interval=1.0,
        queue_limit=5,
        inbox_size=8,
    )


async def test_callers_during_a_write_share_the_next_one() -> None:
    store = _SlowStore()
    bridge = _bridge(store)
    done: list[int] = []

    async def change(n: int) -> None:
        await bridge.persist()
        done.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(change, 0)
        await wait_all_tasks_blocked()  # the first write is running (held by the store)
        for n in range(1, 50):
            nursery.start_soon(change, n)
        await wait_all_tasks_blocked()
        store.release.set()
    assert sorted(done) == list(range(50))
    assert store.writes == 2  # the first, then one for the 49 that came during it


async def test_a_caller_waits_for_a_write_that_includes_its_change() -> None:
    store = _SlowStore()
    store.release.set()
    bridge = _bridge(store)
    await bridge.persist()
    await bridge.persist()
    assert store.writes == 2  # sequential callers each get their own write
