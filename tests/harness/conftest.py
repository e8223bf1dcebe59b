"""Fixtures for the Mattermost emulator tests: a fake millisecond clock and ready accounts."""

from __future__ import annotations

import msgspec
import pytest

from mmthreads.harness.mattermost import Account, MattermostEmulator, MattermostState
from mmthreads.harness.mattermost.posts import CreatePost


class FakeClock:
    """Epoch milliseconds that only move when told to."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class World(msgspec.Struct):
    """A state with a bot, two humans and the DMs between the bot and each human."""

    state: MattermostState
    clock: FakeClock
    bot: Account
    alice: Account
    bob: Account
    dm: str
    dm_bob: str

    def post(self, who: Account, message: str, *, root_id: str = "", channel: str = "", **kw):
        body = CreatePost(channel_id=channel or self.dm, message=message, root_id=root_id, **kw)
        return self.state.create_post(who.id, body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    state = MattermostState(clock=clock, seed=1)
    bot = state.create_user("bot", bot=True, token="bot-token")
    alice = state.create_user("alice", token="alice-token")
    bob = state.create_user("bob", token="bob-token")
    dm = state.direct_channel(alice.id, [alice.id, bot.id]).id
    dm_bob = state.direct_channel(bob.id, [bob.id, bot.id]).id
    state.take_events()
    return World(state, clock, bot, alice, bob, dm, dm_bob)


@pytest.fixture
def emulator(clock: FakeClock) -> MattermostEmulator:
    return MattermostEmulator(clock=clock, seed=2)
