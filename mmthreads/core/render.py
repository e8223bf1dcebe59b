"""Every text the bridge posts on its own behalf, as Mattermost markdown.

The functions here are pure: they take mappings, counts and times (epoch milliseconds, the unit
Mattermost uses everywhere) and return strings. They never read the clock, so the exact texts
can be asserted in tests. All times are shown in UTC, e.g. ``2026-01-15 14:30 UTC``, because the
bridge does not know the reader's time zone.

The three refusal headings (**Prompts not accepted in main DM**, **Thread not recognized**,
**Session ended**) are fixed by the spec; each refusal is that heading plus one line of guidance.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Final

from mmthreads.core.actions import (
    DisconnectedNotice,
    EndedNotice,
    OrphanedNotice,
    QueueFullNotice,
    ReconnectedNotice,
    SessionEndedReply,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mmthreads.core.actions import Notice
    from mmthreads.core.events import EndReason
    from mmthreads.mapping import ThreadMapping

__all__ = [
    "PROMPT_REFUSED",
    "PROMPT_REFUSED_HEADING",
    "PROPS_DIRECTORY",
    "PROPS_OPENCODE_SERVER",
    "PROPS_PROJECT_NAME",
    "PROPS_SESSION_ID",
    "PROPS_SHORT_ID",
    "SESSION_ENDED",
    "SESSION_ENDED_HEADING",
    "THREAD_NOT_RECOGNIZED",
    "THREAD_NOT_RECOGNIZED_HEADING",
    "TITLE_PLACEHOLDER",
    "code_span",
    "disconnected_notice",
    "ended_post",
    "escape_markdown",
    "format_age",
    "format_utc",
    "not_delivered_notice",
    "orphaned_notice",
    "parse_iso_ms",
    "permalink",
    "queue_full_notice",
    "reconnected_notice",
    "render_notice",
    "root_post",
    "root_post_props",
    "session_id_from_props",
]

PROMPT_REFUSED_HEADING: Final = "Prompts not accepted in main DM"
THREAD_NOT_RECOGNIZED_HEADING: Final = "Thread not recognized"
SESSION_ENDED_HEADING: Final = "Session ended"

#: Reply to text typed in the main DM that is not a command.
PROMPT_REFUSED: Final = (
    f"**{PROMPT_REFUSED_HEADING}**\n"
    "Reply in a session's thread to send it a prompt; `!sessions` lists them."
)
#: Reply to a post in a thread that belongs to no session.
THREAD_NOT_RECOGNIZED: Final = (
    f"**{THREAD_NOT_RECOGNIZED_HEADING}**\n"
    "This thread is not linked to an OpenCode session; use `!sessions` to find the active threads."
)
#: Reply to a post in the thread of an ended or orphaned session.
SESSION_ENDED: Final = (
    f"**{SESSION_ENDED_HEADING}**\n"
    "This thread is read-only; start a new OpenCode session to get a new thread."
)
#: Shown in the root post until OpenCode has generated a title for the session.
TITLE_PLACEHOLDER: Final = "_not generated yet_"

# Keys of the props written on a thread root post. They are namespaced so they cannot collide
# with the props Mattermost itself manages (from_bot, attachments, ...), and they carry enough to
# rebuild the mapping file from Mattermost if the file is lost.
PROPS_SESSION_ID: Final = "mmthreads_session_id"
PROPS_SHORT_ID: Final = "mmthreads_short_id"
PROPS_PROJECT_NAME: Final = "mmthreads_project_name"
PROPS_DIRECTORY: Final = "mmthreads_directory"
PROPS_OPENCODE_SERVER: Final = "mmthreads_opencode_server"

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MINUTE_MS: Final = 60_000
_HOUR_MS: Final = 60 * _MINUTE_MS
_DAY_MS: Final = 24 * _HOUR_MS

# CommonMark lets a backslash escape any ASCII punctuation; these are the characters that start
# inline markup in Mattermost (emphasis, code, links, HTML/autolinks, tables, strikethrough).
_MARKDOWN_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~])")
_BACKTICK_RUNS: Final = re.compile(r"`+")


# --- small formatting helpers -------------------------------------------------------------------


def format_utc(ms: int) -> str:
    """Format epoch milliseconds as ``2026-01-15 14:30 UTC``.

    Args:
        ms: Milliseconds since the Unix epoch.

    Returns:
        The minute-precision UTC time, or ``unknown time`` when ``ms`` is out of range.
    """
    try:
        # Arithmetic on a fixed epoch, not fromtimestamp(): no platform time functions involved.
        moment = _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return "unknown time"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def parse_iso_ms(value: str | None) -> int | None:
    """Parse an ISO-8601 timestamp (as found in the mapping file) into epoch milliseconds.

    Args:
        value: A timestamp such as ``2026-01-15T14:30:00.000Z``; a naive one is taken as UTC.

    Returns:
        Milliseconds since the epoch, or None when ``value`` is missing or not a timestamp.
    """
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def format_age(ms: int) -> str:
    """Format a duration compactly: ``<1m``, ``3m``, ``2h 5m``, ``2h``, ``4d``.

    Days drop the hours on purpose: past a day the exact hour no longer helps to tell sessions
    apart, and the short form keeps ``!sessions`` lines narrow.

    Args:
        ms: The duration in milliseconds; negative values (clock skew) count as zero.

    Returns:
        The duration, rounded down to whole minutes, hours or days.
    """
    if ms < _MINUTE_MS:
        return "<1m"
    if ms < _HOUR_MS:
        return f"{ms // _MINUTE_MS}m"
    if ms < _DAY_MS:
        hours, minutes = divmod(ms // _MINUTE_MS, 60)
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{ms // _DAY_MS}d"


def escape_markdown(text: str) -> str:
    """Escape inline markdown so that user-chosen text (titles, names) shows literally.

    Args:
        text: Any text; line breaks are folded into spaces so it stays on one line.

    Returns:
        The text with markup characters backslash-escaped.
    """
    one_line = " ".join(text.split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def code_span(text: str) -> str:
    """Wrap text in an inline code span that survives backticks inside it.

    Args:
        text: Any text, e.g. a directory path; line breaks are folded into spaces.

    Returns:
        The text between enough backticks (CommonMark: a run longer than any run inside), padded
        with spaces when it starts or ends with a backtick.
    """
    # A code span ends at the first backtick run as long as its opener, so the fence must be
    # longer than any run inside; the padding spaces are stripped again by the renderer.
    one_line = " ".join(text.split()) or " "
    longest = max((len(run) for run in _BACKTICK_RUNS.findall(one_line)), default=0)
    fence = "`" * (longest + 1)
    if one_line.startswith("`") or one_line.endswith("`"):
        one_line = f" {one_line} "
    return f"{fence}{one_line}{fence}"


def permalink(site_url: str, post_id: str) -> str:
    """Team-agnostic link to a post: ``{site_url}/_redirect/pl/{post_id}``.

    DMs belong to no team, so the ``_redirect`` form is the one that works for every reader.

    Args:
        site_url: The Mattermost site URL, with or without a trailing slash.
        post_id: The post to link to.

    Returns:
        The permalink URL.
    """
    return f"{site_url.rstrip('/')}/_redirect/pl/{post_id}"


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


# --- the thread root post -----------------------------------------------------------------------


def root_post(mapping: ThreadMapping) -> str:
    """The root post of a session's thread.

    Args:
        mapping: The session's mapping (project, directory, short id, start time, title).

    Returns:
        Five lines: session and project, directory, start time, title (or a placeholder until
        OpenCode has generated one), and the invitation to reply.
    """
    started = parse_iso_ms(mapping.created_at)
    # The title is OpenCode's (often the model's) wording: escape it so it cannot inject markup.
    title = escape_markdown(mapping.session_title) if mapping.session_title else ""
    return "\n".join(
        (
            f"**OpenCode session** {code_span(mapping.short_id)}"
            f" in **{escape_markdown(mapping.project_name)}**",
            f"Directory: {code_span(mapping.directory)}",
            # An unreadable createdAt is shown as found rather than dropped.
            f"Started: {format_utc(started) if started is not None else mapping.created_at}",
            f"Title: {title or TITLE_PLACEHOLDER}",
            "Reply in this thread to send prompts.",
        )
    )


def root_post_props(mapping: ThreadMapping) -> dict[str, object]:
    """The props written on a thread root post, so the mapping can be rebuilt from Mattermost.

    Args:
        mapping: The session's mapping.

    Returns:
        A new dict of namespaced string props (session id, short id, project, directory and the
        OpenCode server the session lives on).
    """
    return {
        PROPS_SESSION_ID: mapping.session_id,
        PROPS_SHORT_ID: mapping.short_id,
        PROPS_PROJECT_NAME: mapping.project_name,
        PROPS_DIRECTORY: mapping.directory,
        PROPS_OPENCODE_SERVER: mapping.opencode_server,
    }


def session_id_from_props(props: Mapping[str, object]) -> str | None:
    """Read back the session id written by :func:`root_post_props`.

    Args:
        props: The props of a post, as Mattermost returns them.

    Returns:
        The session id, or None when the post is not a thread root written by mmthreads.
    """
    value = props.get(PROPS_SESSION_ID)
    return value if isinstance(value, str) and value else None


# --- lifecycle notices in a thread --------------------------------------------------------------


def ended_post(mapping: ThreadMapping, *, ended_ms: int, reason: EndReason = "ended") -> str:
    """The final post of a thread whose session ended normally.

    Args:
        mapping: The session's mapping; its ``created_at`` gives the start.
        ended_ms: When the session ended, in epoch milliseconds.
        reason: How OpenCode ended it; ``deleted`` and ``archived`` are named in the post.

    Returns:
        One line with the end time, the duration and the read-only note.
    """
    started = parse_iso_ms(mapping.created_at)
    how = f" ({reason})" if reason != "ended" else ""
    ran = f" after {format_age(ended_ms - started)}" if started is not None else ""
    return (
        f"**{SESSION_ENDED_HEADING}**{how} at {format_utc(ended_ms)}{ran}. "
        "This thread is now read-only."
    )


def disconnected_notice(*, reason: str, queue_limit: int) -> str:
    """The one-line notice posted when the session's OpenCode server is lost.

    Args:
        reason: What went wrong, as the adapter described it (e.g. ``event stream closed``).
        queue_limit: How many prompts the thread queues while disconnected.

    Returns:
        The notice.
    """
    # The reason is an adapter's description of a failure, possibly an exception's text.
    why = f" ({escape_markdown(reason)})" if reason.strip() else ""
    return (
        f":warning: Lost the connection to OpenCode{why}; prompts posted here are queued "
        f"(up to {queue_limit}) and sent when it is back."
    )


def reconnected_notice(delivered: int) -> str:
    """The one-line notice posted when the session is reachable again.

    Args:
        delivered: How many queued prompts were delivered on reconnection.

    Returns:
        The notice.
    """
    # Nothing queued is the common case: no count to read then.
    if delivered <= 0:
        return ":white_check_mark: Connection to OpenCode restored."
    queued = _plural(delivered, "queued prompt", "queued prompts")
    return f":white_check_mark: Connection to OpenCode restored; {queued} delivered."


def orphaned_notice(undelivered: int = 0) -> str:
    """The one-line notice posted when the session turns out to no longer exist.

    Args:
        undelivered: How many prompts queued while disconnected are dropped with it.

    Returns:
        The notice, naming the dropped prompts when there are any.
    """
    text = ":no_entry: This session no longer exists in OpenCode; the thread is now read-only."
    if undelivered > 0:
        verb = "was" if undelivered == 1 else "were"
        text += f" {_plural(undelivered, 'queued prompt', 'queued prompts')} {verb} not delivered."
    return text


def queue_full_notice(limit: int) -> str:
    """Reply to a prompt that could not be queued because the queue is full.

    Args:
        limit: The queue's capacity.

    Returns:
        The notice.
    """
    return (
        f":warning: Prompt not queued: the queue is full ({_plural(limit, 'prompt', 'prompts')})."
        " Send it again once OpenCode is back."
    )


def not_delivered_notice(count: int) -> str:
    """Notice that queued prompts were dropped because the session is gone.

    Args:
        count: How many queued prompts were not delivered.

    Returns:
        The notice.
    """
    verb = "was" if count == 1 else "were"
    queued = _plural(count, "queued prompt", "queued prompts")
    return f":no_entry: {queued} {verb} not delivered: the session is gone."


def render_notice(notice: Notice, *, mapping: ThreadMapping) -> str:
    """The text of a notice the thread machine asked for (``PostNotice``/``ReplyToPost``).

    Args:
        notice: The notice, as data.
        mapping: The thread's mapping, for what the notice itself does not carry (the start
            time, for the ended post's duration).

    Returns:
        The Mattermost markdown to post.
    """
    match notice:
        case DisconnectedNotice(reason=reason, queue_limit=limit):
            return disconnected_notice(reason=reason, queue_limit=limit)
        case ReconnectedNotice(delivered=delivered):
            return reconnected_notice(delivered)
        case EndedNotice(reason=reason, ended_at_ms=ended_ms):
            return ended_post(mapping, ended_ms=ended_ms, reason=reason)
        case OrphanedNotice(undelivered=undelivered):
            return orphaned_notice(len(undelivered))
        case QueueFullNotice(queue_limit=limit):
            return queue_full_notice(limit)
        case SessionEndedReply():
            # Orphaned threads are answered like ended ones: both are read-only for good.
            return SESSION_ENDED
