"""The session thread lifecycle: the transition table, exhaustively, and prompts in every state."""

from __future__ import annotations

import logging
from typing import get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.actions import (
    DisconnectedNotice,
    EndedNotice,
    ForwardPrompt,
    OrphanedNotice,
    PersistMapping,
    PostNotice,
    QueueFullNotice,
    ReconnectedNotice,
    ReplyToPost,
    SessionEndedReply,
    ThreadAction,
)
from mmthreads.core.events import (
    AgentLost,
    AgentRestored,
    EndReason,
    PromptReceived,
    SessionEnded,
    SessionGone,
    ThreadEvent,
)
from mmthreads.core.states import ThreadState
from mmthreads.core.thread_machine import EVENT_TRIGGERS, THREAD_TRANSITIONS, ThreadSession
from mmthreads.errors import InvalidTransition, MmthreadsError

ACTIVE = ThreadState.ACTIVE
DISCONNECTED = ThreadState.DISCONNECTED
ENDED = ThreadState.ENDED
ORPHANED = ThreadState.ORPHANED

SID = "ses_ab12"
LIMIT = 3


def prompt(n: int) -> PromptReceived:
    return PromptReceived(post_id=f"post{n}", text=f"prompt {n}", file_ids=(f"file{n}",), at_ms=n)


def session_in(state: ThreadState, *, queued: int = 0, limit: int = LIMIT) -> ThreadSession:
    """A thread re-attached in ``state``; when disconnected, with ``queued`` prompts waiting."""
    session = ThreadSession(SID, state=state, queue_limit=limit)
    for n in range(queued):
        assert session.handle(prompt(n)) == []
    return session


# --- the table is the spec's ----------------------------------------------------------------------


def test_the_table_is_exactly_the_spec_lifecycle() -> None:
    rows = {(t["source"], t["dest"], t["trigger"]) for t in THREAD_TRANSITIONS}
    assert len(THREAD_TRANSITIONS) == len(rows) == 5
    assert rows == {
        (ACTIVE, ENDED, "session_ended"),
        (ACTIVE, DISCONNECTED, "agent_lost"),
        (ACTIVE, ORPHANED, "session_gone"),
        (DISCONNECTED, ACTIVE, "agent_restored"),
        (DISCONNECTED, ORPHANED, "agent_restored"),
    }
    # No row leaves a final state, and the machine is told nothing the table does not name.
    assert not [t for t in THREAD_TRANSITIONS if ThreadState(t["source"]).is_final]
    assert set(EVENT_TRIGGERS.values()) == {t["trigger"] for t in THREAD_TRANSITIONS}


# --- every legal transition, with its exact actions -----------------------------------------------

LEGAL = [
    pytest.param(
        ACTIVE,
        SessionEnded(reason=reason, at_ms=1_700_000_000_000),
        ENDED,
        [
            PersistMapping(status=ENDED, ended_at_ms=1_700_000_000_000),
            PostNotice(notice=EndedNotice(reason=reason, ended_at_ms=1_700_000_000_000)),
        ],
        id=f"active-ended-{reason}",
    )
    for reason in get_args(EndReason)
] + [
    pytest.param(
        ACTIVE,
        AgentLost(reason="event stream closed"),
        DISCONNECTED,
        [
            PersistMapping(status=DISCONNECTED),
            PostNotice(notice=DisconnectedNotice(reason="event stream closed", queue_limit=LIMIT)),
        ],
        id="active-disconnected",
    ),
    pytest.param(
        ACTIVE,
        SessionGone(),
        ORPHANED,
        [PersistMapping(status=ORPHANED), PostNotice(notice=OrphanedNotice(undelivered=()))],
        id="active-orphaned",
    ),
    pytest.param(
        DISCONNECTED,
        AgentRestored(session_exists=True),
        ACTIVE,
        [PersistMapping(status=ACTIVE), PostNotice(notice=ReconnectedNotice(delivered=0))],
        id="disconnected-active",
    ),
    pytest.param(
        DISCONNECTED,
        AgentRestored(session_exists=False),
        ORPHANED,
        [PersistMapping(status=ORPHANED), PostNotice(notice=OrphanedNotice(undelivered=()))],
        id="disconnected-orphaned",
    ),
]


@pytest.mark.parametrize(("start", "event", "expected_state", "expected_actions"), LEGAL)
def test_legal_transition(
    start: ThreadState,
    event: ThreadEvent,
    expected_state: ThreadState,
    expected_actions: list[ThreadAction],
) -> None:
    session = session_in(start)
    assert session.handle(event) == expected_actions
    assert session.state is expected_state
    assert session.queued == ()


# --- every other (state, event) pair is refused and changes nothing -------------------------------

#: One example of each lifecycle event; AgentRestored twice, since its guard splits it.
LIFECYCLE_EVENTS: list[ThreadEvent] = [
    SessionEnded(reason="ended", at_ms=5),
    AgentLost(reason="server unreachable"),
    AgentRestored(session_exists=True),
    AgentRestored(session_exists=False),
    SessionGone(),
]
LEGAL_PAIRS = {
    (ACTIVE, SessionEnded),
    (ACTIVE, AgentLost),
    (ACTIVE, SessionGone),
    (DISCONNECTED, AgentRestored),
}
ILLEGAL = [
    pytest.param(state, event, id=f"{state.value}-{type(event).__name__}")
    for state in ThreadState
    for event in LIFECYCLE_EVENTS
    if (state, type(event)) not in LEGAL_PAIRS
]


def test_the_examples_cover_every_event_kind() -> None:
    # A new event kind must be added to LIFECYCLE_EVENTS (or be a prompt) to be checked below.
    kinds = {type(event) for event in LIFECYCLE_EVENTS} | {PromptReceived}
    assert kinds == set(get_args(ThreadEvent))
    assert set(EVENT_TRIGGERS) == kinds - {PromptReceived}


def test_the_legal_pairs_are_those_of_the_table() -> None:
    # ILLEGAL is everything but LEGAL_PAIRS, so LEGAL_PAIRS must be what the machine accepts.
    kind_of = {trigger: kind for kind, trigger in EVENT_TRIGGERS.items()}
    from_table = {(ThreadState(t["source"]), kind_of[t["trigger"]]) for t in THREAD_TRANSITIONS}
    assert from_table == LEGAL_PAIRS
    assert len(ILLEGAL) == len(ThreadState) * len(LIFECYCLE_EVENTS) - 5  # 5 accepted examples


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_pair_raises_and_changes_nothing(state: ThreadState, event: ThreadEvent) -> None:
    session = session_in(state, queued=2 if state is DISCONNECTED else 0)
    queued_before = session.queued

    with pytest.raises(InvalidTransition) as caught:
        session.handle(event)

    assert (caught.value.session_id, caught.value.state) == (SID, state.value)
    assert caught.value.event == type(event).__name__
    assert session.state is state
    assert session.queued == queued_before
    # Nothing was left in the outbox: the next event yields only its own actions.
    expected = {
        ACTIVE: [ForwardPrompt(prompt=prompt(9))],
        DISCONNECTED: [],
        ENDED: [ReplyToPost(post_id="post9", notice=SessionEndedReply(state=ENDED))],
        ORPHANED: [ReplyToPost(post_id="post9", notice=SessionEndedReply(state=ORPHANED))],
    }[state]
    assert session.handle(prompt(9)) == expected


def test_invalid_transition_is_an_mmthreads_error_with_a_useful_message() -> None:
    error = InvalidTransition(SID, "disconnected", "AgentLost")
    assert isinstance(error, MmthreadsError)
    assert str(error) == "session ses_ab12: event AgentLost is not accepted in state disconnected"
    assert repr(error) == (
        "InvalidTransition(session_id='ses_ab12', state='disconnected', event='AgentLost')"
    )


@pytest.mark.parametrize("final", [ENDED, ORPHANED])
def test_final_states_stay_final(final: ThreadState) -> None:
    session = session_in(final)
    for event in LIFECYCLE_EVENTS:
        with pytest.raises(InvalidTransition):
            session.handle(event)
        assert session.state is final


# --- prompts --------------------------------------------------------------------------------------


def test_prompt_while_active_is_forwarded() -> None:
    session = session_in(ACTIVE)
    assert session.handle(prompt(1)) == [ForwardPrompt(prompt=prompt(1))]
    assert session.state is ACTIVE
    assert session.queued == ()


@pytest.mark.parametrize("final", [ENDED, ORPHANED])
def test_prompt_after_the_end_gets_the_session_ended_reply(final: ThreadState) -> None:
    session = session_in(final)
    reply = ReplyToPost(post_id="post1", notice=SessionEndedReply(state=final))
    assert session.handle(prompt(1)) == [reply]
    assert session.state is final


@pytest.mark.parametrize("limit", [0, 1, 3, 5])
def test_prompts_while_disconnected_are_queued_in_order_up_to_the_limit(limit: int) -> None:
    session = ThreadSession(SID, state=DISCONNECTED, queue_limit=limit)
    for n in range(limit):
        assert session.handle(prompt(n)) == []
    assert session.queued == tuple(prompt(n) for n in range(limit))

    # Beyond the bound each prompt is refused, with a reply to its own post.
    for n in range(limit, limit + 2):
        refused = ReplyToPost(post_id=f"post{n}", notice=QueueFullNotice(queue_limit=limit))
        assert session.handle(prompt(n)) == [refused]
    assert session.queued == tuple(prompt(n) for n in range(limit))
    assert session.state is DISCONNECTED


def test_queued_prompts_are_delivered_in_order_when_the_session_is_back() -> None:
    session = session_in(ACTIVE)
    session.handle(AgentLost(reason="event stream closed"))
    for n in range(LIMIT + 1):  # the last one is refused and must not be delivered later
        session.handle(prompt(n))

    assert session.handle(AgentRestored(session_exists=True)) == [
        PersistMapping(status=ACTIVE),
        ForwardPrompt(prompt=prompt(0)),
        ForwardPrompt(prompt=prompt(1)),
        ForwardPrompt(prompt=prompt(2)),
        PostNotice(notice=ReconnectedNotice(delivered=3)),
    ]
    assert session.queued == ()
    assert session.handle(prompt(7)) == [ForwardPrompt(prompt=prompt(7))]


def test_queued_prompts_are_reported_undelivered_when_the_session_is_gone() -> None:
    session = session_in(DISCONNECTED, queued=2)
    assert session.handle(AgentRestored(session_exists=False)) == [
        PersistMapping(status=ORPHANED),
        PostNotice(notice=OrphanedNotice(undelivered=("post0", "post1"))),
    ]
    assert session.queued == ()
    assert session.state is ORPHANED


def test_each_disconnection_gets_one_notice_and_a_fresh_queue() -> None:
    session = session_in(ACTIVE)
    for _ in range(3):
        actions = session.handle(AgentLost(reason="server unreachable"))
        assert [a for a in actions if isinstance(a, PostNotice)] == [
            PostNotice(notice=DisconnectedNotice(reason="server unreachable", queue_limit=LIMIT))
        ]
        session.handle(prompt(1))
        with pytest.raises(InvalidTransition):  # a second "lost" adds no second notice
            session.handle(AgentLost(reason="server unreachable"))
        assert session.handle(AgentRestored(session_exists=True))[-1] == PostNotice(
            notice=ReconnectedNotice(delivered=1)
        )


# --- construction ---------------------------------------------------------------------------------


def test_a_new_thread_starts_active_and_says_nothing() -> None:
    session = ThreadSession(SID, queue_limit=LIMIT)
    assert session.state is ACTIVE
    assert (session.session_id, session.queue_limit, session.queued) == (SID, LIMIT, ())


@pytest.mark.parametrize("state", list(ThreadState))
def test_reattaching_in_any_state_emits_nothing(state: ThreadState) -> None:
    session = ThreadSession(SID, state=state, queue_limit=LIMIT)
    assert session.state is state
    assert session.queued == ()


def test_the_machine_binds_nothing_onto_the_session_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # model_override=True: only what ThreadSession declares is bound (nothing); the skipped
    # convenience methods must not cost a WARNING per thread.
    with caplog.at_level(logging.DEBUG, logger="transitions"):
        session = ThreadSession(SID, queue_limit=LIMIT)
    assert caplog.records == []
    for name in ("agent_lost", "may_agent_lost", "is_ACTIVE", "trigger", "to_ENDED"):
        assert not hasattr(session, name)


def test_a_negative_queue_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_limit"):
        ThreadSession(SID, queue_limit=-1)


def test_repr_shows_session_state_and_queue() -> None:
    session = session_in(DISCONNECTED, queued=2)
    assert repr(session) == "<ThreadSession session=ses_ab12 state=DISCONNECTED queued=2>"


def test_events_and_actions_round_trip_as_tagged_json() -> None:
    session = session_in(DISCONNECTED, queued=1)
    actions = session.handle(AgentRestored(session_exists=True))
    encoded = msgspec.json.encode(actions)
    assert b'"type":"ForwardPrompt"' in encoded
    assert b'"status":"active"' in encoded  # the mapping file's status string
    assert msgspec.json.decode(encoded, type=list[ThreadAction]) == actions
    encoded_events = msgspec.json.encode(LIFECYCLE_EVENTS)
    assert msgspec.json.decode(encoded_events, type=list[ThreadEvent]) == LIFECYCLE_EVENTS


# --- arbitrary sequences --------------------------------------------------------------------------

events = st.one_of(
    st.builds(SessionEnded, reason=st.sampled_from(get_args(EndReason)), at_ms=st.integers(0)),
    st.builds(AgentLost, reason=st.text(max_size=10)),
    st.builds(AgentRestored, session_exists=st.booleans()),
    st.just(SessionGone()),
    # post ids are made unique below, so every prompt can be accounted for.
    st.builds(PromptReceived, post_id=st.just(""), text=st.text(max_size=10), at_ms=st.integers(0)),
)


def _next_state(state: ThreadState, event: ThreadEvent) -> ThreadState | None:
    """The spec's table, written independently of THREAD_TRANSITIONS (None: refused)."""
    match state, event:
        case ThreadState.ACTIVE, SessionEnded():
            return ENDED
        case ThreadState.ACTIVE, AgentLost():
            return DISCONNECTED
        case ThreadState.ACTIVE, SessionGone():
            return ORPHANED
        case ThreadState.DISCONNECTED, AgentRestored(session_exists=exists):
            return ACTIVE if exists else ORPHANED
        case _:
            return None


@given(
    start=st.sampled_from(ThreadState),
    limit=st.integers(0, 4),
    sequence=st.lists(events, max_size=40),
)
def test_arbitrary_event_sequences_keep_the_machine_well_defined(
    start: ThreadState, limit: int, sequence: list[ThreadEvent]
) -> None:
    session = ThreadSession(SID, state=start, queue_limit=limit)
    prompts: set[str] = set()
    accounted: list[str] = []  # post ids forwarded, refused, replied to or reported undelivered

    for n, event in enumerate(sequence):
        if isinstance(event, PromptReceived):
            event = msgspec.structs.replace(event, post_id=f"post{n}")
            prompts.add(event.post_id)
        before = session.state
        try:
            actions = session.handle(event)
        except InvalidTransition:
            assert _next_state(before, event) is None
            assert session.state is before
            continue

        if isinstance(event, PromptReceived):
            assert session.state is before
            assert not [a for a in actions if isinstance(a, PersistMapping | PostNotice)]
        else:
            assert session.state is _next_state(before, event)
            # Every state change is persisted first and told exactly once.
            assert actions[0] == PersistMapping(
                status=session.state,
                ended_at_ms=event.at_ms if isinstance(event, SessionEnded) else None,
            )
            assert len([a for a in actions if isinstance(a, PostNotice)]) == 1

        for action in actions:
            match action:
                case ForwardPrompt(prompt=forwarded):
                    accounted.append(forwarded.post_id)
                case ReplyToPost(post_id=post_id):
                    accounted.append(post_id)
                case PostNotice(notice=OrphanedNotice(undelivered=undelivered)):
                    accounted.extend(undelivered)

        assert session.state in ThreadState
        assert len(session.queued) <= limit
        assert session.queued == () or session.state is DISCONNECTED
        if before.is_final:
            assert session.state is before

    # Every prompt is accounted for exactly once, or is still waiting.
    waiting = [queued.post_id for queued in session.queued]
    assert sorted(accounted + waiting) == sorted(prompts)
