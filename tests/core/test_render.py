"""Rendering: the exact texts the bridge posts, and the helpers behind them."""

from __future__ import annotations

import msgspec
import pytest

from mmthreads.core.actions import (
    DisconnectedNotice,
    EndedNotice,
    Notice,
    OrphanedNotice,
    QueueFullNotice,
    ReconnectedNotice,
    SessionEndedReply,
)
from mmthreads.core.render import (
    PROMPT_REFUSED,
    SESSION_ENDED,
    THREAD_NOT_RECOGNIZED,
    code_span,
    disconnected_notice,
    ended_post,
    escape_markdown,
    format_age,
    format_utc,
    not_delivered_notice,
    orphaned_notice,
    parse_iso_ms,
    permalink,
    queue_full_notice,
    reconnected_notice,
    render_notice,
    root_post,
    root_post_props,
    session_id_from_props,
)
from mmthreads.core.states import ThreadState
from tests.samples import SPEC_MAPPING

MAPPING = msgspec.structs.replace(SPEC_MAPPING, opencode_server="http://127.0.0.1:4096")
ENDED_AT = 1768491900000  # 2026-01-15T15:45:00Z


# --- the three refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "heading", "guidance"),
    [
        (
            PROMPT_REFUSED,
            "**Prompts not accepted in main DM**",
            "Reply in a session's thread to send it a prompt; `!sessions` lists them.",
        ),
        (
            THREAD_NOT_RECOGNIZED,
            "**Thread not recognized**",
            "This thread is not linked to an OpenCode session;"
            " use `!sessions` to find the active threads.",
        ),
        (
            SESSION_ENDED,
            "**Session ended**",
            "This thread is read-only; start a new OpenCode session to get a new thread.",
        ),
    ],
)
def test_refusals_are_the_spec_heading_plus_one_line(
    text: str, heading: str, guidance: str
) -> None:
    assert text == f"{heading}\n{guidance}"


# --- the thread root ----------------------------------------------------------------------------


def test_root_post() -> None:
    assert root_post(MAPPING) == (
        "**OpenCode session** `ses_a1b2` in **business-automation**\n"
        "Directory: `/home/dev/business-automation`\n"
        "Started: 2026-01-15 14:30 UTC\n"
        "Title: Fix email pipeline\n"
        "Reply in this thread to send prompts."
    )


def test_root_post_before_opencode_names_the_session() -> None:
    untitled = root_post(msgspec.structs.replace(MAPPING, session_title=None))
    assert untitled.splitlines()[3] == "Title: _not generated yet_"


def test_root_post_escapes_what_the_user_chose() -> None:
    odd = msgspec.structs.replace(
        MAPPING, project_name="my_*proj*", directory="/tmp/a`b", session_title="Use <b>|x|</b>\nnow"
    )
    assert root_post(odd).splitlines()[:4] == [
        "**OpenCode session** `ses_a1b2` in **my\\_\\*proj\\***",
        "Directory: ``/tmp/a`b``",
        "Started: 2026-01-15 14:30 UTC",
        "Title: Use \\<b\\>\\|x\\|\\</b\\> now",
    ]


def test_root_post_props_rebuild_the_mapping() -> None:
    props = root_post_props(MAPPING)
    assert props == {
        "mmthreads_session_id": "ses_a1b2c3d4e5f6g7h8i9j0k1l2m3",
        "mmthreads_short_id": "ses_a1b2",
        "mmthreads_project_name": "business-automation",
        "mmthreads_directory": "/home/dev/business-automation",
        "mmthreads_opencode_server": "http://127.0.0.1:4096",
    }
    assert session_id_from_props({**props, "from_bot": "true"}) == MAPPING.session_id
    assert session_id_from_props({"from_bot": "true"}) is None
    assert session_id_from_props({"mmthreads_session_id": 7}) is None


# --- notices in a thread ------------------------------------------------------------------------


def test_ended_post() -> None:
    assert ended_post(MAPPING, ended_ms=ENDED_AT) == (
        "**Session ended** at 2026-01-15 15:45 UTC after 1h 15m. This thread is now read-only."
    )
    assert ended_post(MAPPING, ended_ms=ENDED_AT, reason="deleted") == (
        "**Session ended** (deleted) at 2026-01-15 15:45 UTC after 1h 15m."
        " This thread is now read-only."
    )


def test_one_line_notices() -> None:
    assert disconnected_notice(reason="event stream closed", queue_limit=20) == (
        ":warning: Lost the connection to OpenCode (event stream closed); prompts posted here"
        " are queued (up to 20) and sent when it is back."
    )
    assert disconnected_notice(reason="", queue_limit=1) == (
        ":warning: Lost the connection to OpenCode; prompts posted here are queued (up to 1)"
        " and sent when it is back."
    )
    assert reconnected_notice(0) == ":white_check_mark: Connection to OpenCode restored."
    assert reconnected_notice(1) == (
        ":white_check_mark: Connection to OpenCode restored; 1 queued prompt delivered."
    )
    assert reconnected_notice(3) == (
        ":white_check_mark: Connection to OpenCode restored; 3 queued prompts delivered."
    )
    assert orphaned_notice() == (
        ":no_entry: This session no longer exists in OpenCode; the thread is now read-only."
    )
    assert orphaned_notice(2) == (
        ":no_entry: This session no longer exists in OpenCode; the thread is now read-only."
        " 2 queued prompts were not delivered."
    )
    assert queue_full_notice(20) == (
        ":warning: Prompt not queued: the queue is full (20 prompts)."
        " Send it again once OpenCode is back."
    )
    assert not_delivered_notice(1) == (
        ":no_entry: 1 queued prompt was not delivered: the session is gone."
    )
    assert not_delivered_notice(4) == (
        ":no_entry: 4 queued prompts were not delivered: the session is gone."
    )


@pytest.mark.parametrize(
    ("notice", "text"),
    [
        (
            DisconnectedNotice(reason="server unreachable", queue_limit=5),
            disconnected_notice(reason="server unreachable", queue_limit=5),
        ),
        (ReconnectedNotice(delivered=2), reconnected_notice(2)),
        (
            EndedNotice(reason="archived", ended_at_ms=ENDED_AT),
            ended_post(MAPPING, ended_ms=ENDED_AT, reason="archived"),
        ),
        (OrphanedNotice(undelivered=("p1",)), orphaned_notice(1)),
        (OrphanedNotice(), orphaned_notice(0)),
        (QueueFullNotice(queue_limit=7), queue_full_notice(7)),
        (SessionEndedReply(state=ThreadState.ENDED), SESSION_ENDED),
        (SessionEndedReply(state=ThreadState.ORPHANED), SESSION_ENDED),
    ],
)
def test_render_notice(notice: Notice, text: str) -> None:
    assert render_notice(notice, mapping=MAPPING) == text


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "text"),
    [
        (-5_000, "<1m"),
        (0, "<1m"),
        (59_999, "<1m"),
        (60_000, "1m"),
        (3 * 60_000, "3m"),
        (59 * 60_000 + 59_999, "59m"),
        (3_600_000, "1h"),
        (2 * 3_600_000 + 5 * 60_000, "2h 5m"),
        (23 * 3_600_000 + 59 * 60_000, "23h 59m"),
        (24 * 3_600_000, "1d"),
        (4 * 86_400_000 + 7 * 3_600_000, "4d"),
    ],
)
def test_format_age(duration_ms: int, text: str) -> None:
    assert format_age(duration_ms) == text


def test_times() -> None:
    assert format_utc(ENDED_AT) == "2026-01-15 15:45 UTC"
    assert format_utc(0) == "1970-01-01 00:00 UTC"
    assert format_utc(10**18) == "unknown time"
    assert parse_iso_ms("2026-01-15T15:45:00.000Z") == ENDED_AT
    assert parse_iso_ms("2026-01-15T16:45:00+01:00") == ENDED_AT
    assert parse_iso_ms("2026-01-15T15:45:00") == ENDED_AT  # naive: taken as UTC
    assert parse_iso_ms("not a time") is None
    assert parse_iso_ms("") is None
    assert parse_iso_ms(None) is None


def test_markdown_helpers() -> None:
    assert escape_markdown("a_b *c* [d](e) <f> |g| ~h~ `i` \\") == (
        "a\\_b \\*c\\* \\[d\\](e) \\<f\\> \\|g\\| \\~h\\~ \\`i\\` \\\\"
    )
    assert escape_markdown("two\nlines  here") == "two lines here"
    assert code_span("/home/dev") == "`/home/dev`"
    assert code_span("a``b") == "```a``b```"
    assert code_span("`x`") == "`` `x` ``"
    assert code_span("") == "` `"
    assert permalink("https://mm.example.com/", "abc") == "https://mm.example.com/_redirect/pl/abc"
    assert permalink("https://mm.example.com", "abc") == "https://mm.example.com/_redirect/pl/abc"
