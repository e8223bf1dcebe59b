"""A session's thread: created once, prompts reach exactly that session, answers stream back."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import msgspec
import trio

from mmthreads.core.commands import COMMANDS, help_text, unknown_command_text
from mmthreads.core.render import (
    PROMPT_REFUSED,
    SESSION_ENDED,
    THREAD_NOT_RECOGNIZED,
    root_post,
)
from mmthreads.harness.faults import Status
from mmthreads.harness.script import sent_file_content
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.effects import FILE_NOT_SENT, PROMPT_NOT_SENT
from mmthreads.settings import FileSettings
from tests.e2e.conftest import EDIT_INTERVAL, WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback


def _reply_of(prompt: str) -> str:
    return f"Hello from the stub model! You said: {prompt}"


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


async def test_new_session_gets_its_root_post(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "first")
        root = await loopback.root_of(session.id)
        mapping = await loopback.saved_mapping(session.id)
        assert mapping.thread_root_post_id == root.id
        assert mapping.short_id == "ses_" + session.id[-6:]
        assert root.user_id == loopback.bot.id
        assert root.message == root_post(mapping)


async def test_thread_reply_is_answered_in_that_thread(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "answer me")
        root = await loopback.root_of(session.id)
        prompt = await loopback.human.post(loopback.dm_id, "what is up?", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        assert _reply_of("what is up?") in answer.message.split("\n\n")
        await loopback.mm.emulator.wait_reaction(prompt.id, "white_check_mark")
        thread = loopback.mm.thread(root.id)
        assert [p.id for p in thread] == [root.id, prompt.id, answer.id]
        # Streamed: the answer post was created once, then edited in place, never too often.
        edits = [
            r.at
            for r in loopback.mm.emulator.requests
            if r.method == "PUT" and r.path == f"/api/v4/posts/{answer.id}/patch"
        ]
        assert edits
        gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
        # Calls start an interval apart; arrival times may jitter a little on a busy machine.
        assert all(gap >= EDIT_INTERVAL / 2 for gap in gaps), gaps


async def test_main_dm_commands_and_refusals(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "listed")
        await loopback.root_of(session.id)
        dm, human, mm = loopback.dm_id, loopback.human, loopback.mm
        bot = loopback.bot.id

        asked = await human.post(dm, "!sessions")
        listing = await mm.wait_post(
            lambda p: (
                p.user_id == bot
                and p.create_at >= asked.create_at
                and "ses_" + session.id[-6:] in p.message
                and not p.root_id
                and p.id != asked.id
                and "Reply in this thread" not in p.message
            )
        )
        assert "ses_" + session.id[-6:] in listing.message

        refused = await human.post(dm, "please fix the bug")
        answer = await mm.wait_post(lambda p: p.user_id == bot and p.message == PROMPT_REFUSED)
        assert answer.create_at >= refused.create_at
        assert not answer.root_id

        stray = await human.post(dm, "a root of my own")
        await human.post(dm, "hello?", root_id=stray.id)
        unknown = await mm.wait_post(
            lambda p: p.user_id == bot and p.message == THREAD_NOT_RECOGNIZED
        )
        assert unknown.root_id == stray.id


async def test_deleted_session_ends_the_thread(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "short lived")
        root = await loopback.root_of(session.id)
        loopback.oc.delete_session(session.id)
        await loopback.bot_reply(root.id, lambda p: p.message.startswith("**Session ended**"))
        late = await loopback.human.post(loopback.dm_id, "still there?", root_id=root.id)
        reply = await loopback.bot_reply(root.id, lambda p: p.message == SESSION_ENDED)
        assert reply.create_at >= late.create_at
        mapping = MappingStore(loopback.settings.mapping_file).load().index.get(session.id)
        assert mapping is not None
        assert mapping.status.value == "ended"


async def test_two_sessions_prompted_at_once_stay_separate(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        first = loopback.oc.create_session(loopback.directory, "one")
        second = loopback.oc.create_session(loopback.directory, "two")
        root_a = await loopback.root_of(first.id)
        root_b = await loopback.root_of(second.id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loopback.human.post, loopback.dm_id, "prompt for A", root_a.id)
            nursery.start_soon(loopback.human.post, loopback.dm_id, "prompt for B", root_b.id)
        done_a = await loopback.bot_reply(root_a.id, _is_done)
        done_b = await loopback.bot_reply(root_b.id, _is_done)
        assert _reply_of("prompt for A") in done_a.message.split("\n\n")
        assert _reply_of("prompt for B") in done_b.message.split("\n\n")
        for root, prompt, answer in (
            (root_a, "prompt for A", done_a),
            (root_b, "prompt for B", done_b),
        ):
            thread = loopback.mm.thread(root.id)
            assert [p.message for p in thread[1:]] == [prompt, answer.message]


async def test_generated_title_is_written_into_the_root_post(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory)
        root = await loopback.root_of(session.id)
        assert "Title: _not generated yet_" in root.message
        await loopback.human.post(loopback.dm_id, "name yourself", root_id=root.id)
        await loopback.bot_reply(root.id, _is_done)
        titled = await loopback.mm.wait_post(
            lambda p: p.id == root.id and "Title: name yourself" in p.message
        )
        mapping = await loopback.saved_mapping(session.id)
        while mapping.session_title != "name yourself":
            await trio.sleep(0.01)  # the file is written right after the edit
            mapping = await loopback.saved_mapping(session.id)
        assert titled.message == root_post(mapping)


async def test_a_refused_prompt_is_answered_with_the_reason(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "refusing")
        root = await loopback.root_of(session.id)
        loopback.oc.standin.plan.add(
            "http:POST /session/*/prompt_async", Status(status=500), times=1
        )
        prompt = await loopback.human.post(loopback.dm_id, "are you there?", root_id=root.id)
        refusal = await loopback.bot_reply(root.id, lambda p: p.message.startswith(PROMPT_NOT_SENT))
        assert refusal.create_at >= prompt.create_at
        # The thread still works: the next prompt is answered.
        await loopback.human.post(loopback.dm_id, "again", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        assert _reply_of("again") in answer.message.split("\n\n")


async def test_help_status_and_unknown_commands(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        dm, human, mm, bot = loopback.dm_id, loopback.human, loopback.mm, loopback.bot.id
        await human.post(dm, "!HELP")
        await mm.wait_post(lambda p: p.user_id == bot and p.message == help_text(COMMANDS))
        await human.post(dm, "!status")
        status = await mm.wait_post(lambda p: p.user_id == bot and "Mattermost" in p.message)
        assert loopback.oc.url in status.message
        await human.post(dm, "!frobnicate")
        unknown = await mm.wait_post(lambda p: p.user_id == bot and "frobnicate" in p.message)
        assert unknown.message == unknown_command_text("frobnicate", COMMANDS)


async def test_archived_session_ends_the_thread(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "archived soon")
        root = await loopback.root_of(session.id)
        loopback.oc.archive_session(session.id)
        ended = await loopback.bot_reply(
            root.id, lambda p: p.message.startswith("**Session ended** (archived)")
        )
        assert ended.root_id == root.id
        await loopback.human.post(loopback.dm_id, "hello?", root_id=root.id)
        await loopback.bot_reply(root.id, lambda p: p.message == SESSION_ENDED)


async def test_attached_files_reach_the_session(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "files")
        root = await loopback.root_of(session.id)
        info = await loopback.human.upload(loopback.dm_id, "notes.txt", b"hello, file")
        await loopback.human.post(loopback.dm_id, "ECHO_FILES", root_id=root.id, file_ids=[info.id])
        answer = await loopback.bot_reply(root.id, _is_done)
        assert any(
            block.startswith("Received notes.txt (") and block.endswith(", 11 bytes)")
            for block in answer.message.split("\n\n")
        ), answer.message


async def test_a_file_over_the_limit_is_left_out_with_a_notice(loopback: Loopback) -> None:
    loopback.settings = msgspec.structs.replace(loopback.settings, files=FileSettings(max_size=4))
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "big file")
        root = await loopback.root_of(session.id)
        info = await loopback.human.upload(loopback.dm_id, "big.txt", b"more than four bytes")
        await loopback.human.post(loopback.dm_id, "ECHO_FILES", root_id=root.id, file_ids=[info.id])
        await loopback.bot_reply(root.id, lambda p: p.message.startswith(FILE_NOT_SENT))
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Received no files" in answer.message.split("\n\n")


async def test_a_file_the_agent_sends_is_uploaded_into_the_thread(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "report")
        root = await loopback.root_of(session.id)
        await loopback.human.post(
            loopback.dm_id, "SEND_FILE ../../etc/re port.txt", root_id=root.id
        )
        await loopback.bot_reply(root.id, _is_done)
        shared = await loopback.bot_reply(root.id, lambda p: bool(p.file_ids))
        assert shared.message == ":paperclip: `re_port.txt`"  # no path, no odd characters
        (file_id,) = shared.file_ids
        state = loopback.mm.emulator.state
        assert state.files[file_id].name == "re_port.txt"
        assert state.file_data[file_id] == sent_file_content("../../etc/re port.txt")


async def test_a_file_the_model_cannot_take_is_left_out(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "archive")
        root = await loopback.root_of(session.id)
        archive = await loopback.human.upload(loopback.dm_id, "src.zip", b"PK\x03\x04zip")
        notes = await loopback.human.upload(loopback.dm_id, "notes.md", b"# notes")
        await loopback.human.post(
            loopback.dm_id, "ECHO_FILES", root_id=root.id, file_ids=[archive.id, notes.id]
        )
        note = await loopback.bot_reply(root.id, lambda p: p.message.startswith(FILE_NOT_SENT))
        assert "`src.zip` was left out" in note.message
        answer = await loopback.bot_reply(root.id, _is_done)
        received = [b for b in answer.message.split("\n\n") if b.startswith("Received")]
        assert len(received) == 1
        assert received[0].startswith("Received notes.md (")
