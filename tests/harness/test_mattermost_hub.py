"""The WebSocket hub, sans-IO: seq numbering, routing, the dead queue and resume outcomes."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from mmthreads.harness.mattermost.events import WsEvent
from mmthreads.harness.mattermost.hub import DEAD_QUEUE_SIZE, SEND_QUEUE_SIZE, Hub, Resume, WebConn
from mmthreads.harness.mattermost.models import Broadcast, WsResponse

CHANNEL = "c" * 26
MEMBERS = {("u" * 26, CHANNEL), ("v" * 26, CHANNEL)}
U, V, W = "u" * 26, "v" * 26, "w" * 26


def _is_member(user: str, channel: str) -> bool:
    return (user, channel) in MEMBERS


def _hub() -> Hub:
    counter = itertools.count()
    return Hub(lambda: f"{next(counter):026d}", server_version="9.11.0.x", inactive_ttl_ms=1000)


def _drain(hub: Hub, conn: WebConn) -> list[dict[str, Any]]:
    frames = []
    while (frame := hub.next_frame(conn)) is not None:
        frames.append(msgspec.json.decode(frame))
    return frames


def _event(name: str = "posted", **broadcast: Any) -> WsEvent:
    return WsEvent(event=name, data={"n": name}, broadcast=Broadcast(**broadcast))


def _connect(hub: Hub, user: str = U, **kwargs: object) -> tuple[WebConn, Resume]:
    result = hub.connect(user, resumable=True, now=0, **kwargs)  # type: ignore[arg-type]
    assert result is not None
    return result


def test_hello_is_seq_0_and_events_count_up_but_replies_do_not() -> None:
    hub = _hub()
    conn, how = _connect(hub)
    assert how is Resume.FRESH
    hub.broadcast(_event(channel_id=CHANNEL), _is_member)
    hub.queue_reply(conn, WsResponse(status="OK", seq_reply=1))
    hub.broadcast(_event("typing", channel_id=CHANNEL), _is_member)
    frames = _drain(hub, conn)
    assert [f.get("event") for f in frames] == ["hello", "posted", None, "typing"]
    assert [f.get("seq") for f in frames] == [0, 1, None, 2]
    assert list(frames[0]) == ["event", "data", "broadcast", "seq"]
    assert frames[0]["data"] == {"connection_id": conn.connection_id, "server_version": "9.11.0.x"}
    assert frames[0]["broadcast"]["user_id"] == U
    assert frames[2] == {"status": "OK", "seq_reply": 1}


@pytest.mark.parametrize(
    ("broadcast", "receivers"),
    [
        ({"channel_id": CHANNEL}, {U, V}),
        ({"channel_id": CHANNEL, "omit_users": {U: True}}, {V}),
        ({"user_id": W}, {W}),
        ({}, {U, V, W}),
        ({"team_id": "t" * 26}, set()),
        ({"channel_id": CHANNEL, "contains_sensitive_data": True}, set()),
    ],
)
def test_routing(broadcast: dict[str, Any], receivers: set[str]) -> None:
    hub = _hub()
    conns = {user: _connect(hub, user)[0] for user in (U, V, W)}
    for conn in conns.values():
        _drain(hub, conn)
    hub.broadcast(_event(**broadcast), _is_member)
    got = {user for user, conn in conns.items() if _drain(hub, conn)}
    assert got == receivers


def test_connection_targeted_events() -> None:
    hub = _hub()
    a, _ = _connect(hub)
    b, _ = _connect(hub)
    _drain(hub, a), _drain(hub, b)
    hub.broadcast(_event(connection_id=b.connection_id), _is_member)
    hub.broadcast(_event(channel_id=CHANNEL, omit_connection_id=b.connection_id), _is_member)
    assert len(_drain(hub, a)) == 1
    assert len(_drain(hub, b)) == 1


def _disconnect_after(hub: Hub, events: int, written: int) -> WebConn:
    """A connection that got ``written`` of ``events`` events before its socket went."""
    conn, _ = _connect(hub)
    conn.owner = "socket"
    for _ in range(events):
        hub.broadcast(_event(channel_id=CHANNEL), _is_member)
    for _ in range(written + 1):  # + hello
        hub.next_frame(conn)
    hub.detach(conn, now=0, owner="socket")
    return conn


def test_resume_replays_from_the_dead_queue_without_hello() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=5, written=5)
    hub.broadcast(_event("while_away", channel_id=CHANNEL), _is_member)
    # The client saw up to seq 3 (frames 4 and 5 were lost in flight): it asks for 4.
    again, how = _connect(hub, connection_id=conn.connection_id, sequence_number="4")
    assert (again, how) == (conn, Resume.REPLAYED)
    frames = _drain(hub, conn)
    assert [f["seq"] for f in frames] == [4, 5, 6]
    assert frames[-1]["event"] == "while_away"


def test_resume_with_nothing_missed_continues_numbering() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=3, written=3)
    hub.broadcast(_event("while_away", channel_id=CHANNEL), _is_member)
    again, how = _connect(hub, connection_id=conn.connection_id, sequence_number="4")
    assert how is Resume.LOSSLESS
    assert [(f["event"], f["seq"]) for f in _drain(hub, again)] == [("while_away", 4)]


def test_resume_after_loss_gets_a_new_id_and_hello() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=DEAD_QUEUE_SIZE + 10, written=DEAD_QUEUE_SIZE + 10)
    old_id = conn.connection_id
    again, how = _connect(hub, connection_id=old_id, sequence_number="3")
    assert how is Resume.LOST
    assert again.connection_id != old_id
    frames = _drain(hub, again)
    assert (frames[0]["event"], frames[0]["seq"]) == ("hello", 0)
    assert frames[0]["data"]["connection_id"] == again.connection_id


@pytest.mark.parametrize(
    ("connection_id", "sequence_number", "outcome"),
    [
        ("known", None, "refused"),
        ("known", "-1", "refused"),
        ("known", "x", "refused"),
        ("not-an-id", "1", "refused"),
        ("z" * 26, "1", Resume.FRESH),  # expired or restarted: a new connection
    ],
)
def test_resume_parameter_outcomes(
    connection_id: str, sequence_number: str | None, outcome: object
) -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=1, written=1)
    cid = conn.connection_id if connection_id == "known" else connection_id
    result = hub.connect(
        U, resumable=True, now=0, connection_id=cid, sequence_number=sequence_number
    )
    if outcome == "refused":
        assert result is None
    else:
        assert result is not None
        assert result[1] is outcome
        assert result[0] is not conn


def test_challenge_authenticated_sockets_never_resume() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=1, written=1)
    result = hub.connect(
        U, resumable=False, now=0, connection_id=conn.connection_id, sequence_number="2"
    )
    assert result is not None
    assert result[1] is Resume.FRESH


def test_an_active_or_foreign_connection_is_not_resumed() -> None:
    hub = _hub()
    active, _ = _connect(hub)
    assert _connect(hub, connection_id=active.connection_id, sequence_number="1")[1] is Resume.FRESH
    away = _disconnect_after(hub, events=1, written=1)
    other = _connect(hub, V, connection_id=away.connection_id, sequence_number="1")
    assert other[1] is Resume.FRESH


def test_inactive_connections_expire() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=1, written=1)
    result = hub.connect(
        U, resumable=True, now=5000, connection_id=conn.connection_id, sequence_number="2"
    )
    assert result is not None
    assert result[1] is Resume.FRESH
    assert conn.dropped


def test_a_full_send_queue_drops_the_connection_and_typing_goes_first() -> None:
    hub = _hub()
    conn = _disconnect_after(hub, events=0, written=0)
    for _ in range(SEND_QUEUE_SIZE // 2):
        hub.broadcast(_event(channel_id=CHANNEL), _is_member)
    assert hub.broadcast(_event("typing", channel_id=CHANNEL), _is_member) == 0
    for _ in range(SEND_QUEUE_SIZE // 2):
        hub.broadcast(_event(channel_id=CHANNEL), _is_member)
    assert not conn.dropped
    hub.broadcast(_event(channel_id=CHANNEL), _is_member)
    assert conn.dropped
    assert conn.connection_id not in hub.conns


def test_detach_by_a_stale_socket_is_ignored() -> None:
    hub = _hub()
    conn, _ = _connect(hub)
    conn.owner = "new socket"
    hub.detach(conn, now=0, owner="old socket")
    assert conn.active
