"""The tools the stand-in's agent can call: ``todowrite``, ``bash``, ``write``, ``question``.

Each call publishes its tool part as the real server does (reference §3.2): ``pending`` (empty
input), ``running`` (input, start time), then ``completed`` (output, title, metadata, end time)
or ``error``.  ``bash`` asks for permission first (``permission.asked``) and waits for the reply;
``question`` asks the user (``question.asked``) and waits for the answer.  What the tools "do"
is simulated (``tools.py``): nothing touches the disk.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec

from mmthreads.harness.opencode import tools
from mmthreads.harness.opencode.pending import PermissionDenied
from mmthreads.harness.opencode.wire import (
    QuestionInfo,
    Todo,
    ToolPart,
    ToolRef,
    ToolStateCompleted,
    ToolStateError,
    ToolStatePending,
    ToolStateRunning,
    ToolTime,
)

if TYPE_CHECKING:
    from mmthreads.harness import script
    from mmthreads.harness.opencode.pending import PendingPrompts
    from mmthreads.harness.opencode.signal import ChangeSignal
    from mmthreads.harness.opencode.state import MessageRecord, OpenCodeState
    from mmthreads.harness.opencode.wire import Session

__all__ = ["ToolCalls", "ToolFailed", "ToolOutcome"]


class ToolOutcome(msgspec.Struct, frozen=True):
    """What a tool call gives back to the model, and whether the loop stops after it."""

    result: str
    halt: bool = False
    patch_files: list[str] = msgspec.field(default_factory=list)


class ToolCalls:
    """Runs tool calls against the stand-in's state.

    Args:
        state: The state to publish through.
        pending: Where permissions and questions wait.
        signal: Wakes a call waiting on a human.
    """

    def __init__(self, state: OpenCodeState, pending: PendingPrompts, signal: ChangeSignal) -> None:
        self._state = state
        self._pending = pending
        self._signal = signal

    async def call(
        self,
        open_parts: dict[str, Any],
        session: Session,
        assistant: MessageRecord,
        user: MessageRecord,
        step: script.CallTool,
    ) -> ToolOutcome:
        """Run one tool call: its part goes pending, running, then completed or error.

        Args:
            open_parts: The turn's unfinished parts; the tool part is in it while it runs, so
                an abort can close it.
            session: The session.
            assistant: The step's assistant message.
            user: The turn's user message (a ``write`` adds its diff there).
            step: The call the script made.

        Returns:
            What the model gets back, and whether the loop stops.
        """
        state = self._state
        part = ToolPart(
            id=state.ids.ascending("prt"),
            session_id=session.id,
            message_id=assistant.info.id,
            call_id=f"call_stub_{state.ids.ascending('call')[5:17]}",
            tool=step.tool,
            state=ToolStatePending(input={}, raw=""),
        )
        open_parts[part.id] = part
        state.put_part(session, assistant, part)
        args = dict(step.args)
        if step.tool == "todowrite":
            todos = msgspec.convert(args.get("todos", []), list[Todo])
            state.set_todos(session, todos)
        start = state.clock_ms()
        part.state = ToolStateRunning(input=args, time=ToolTime(start=start))
        state.put_part(session, assistant, part)
        ref = ToolRef(message_id=assistant.info.id, call_id=part.call_id)
        try:
            if step.tool == "todowrite":
                output, title, metadata = tools.todo_result(todos)
                outcome = ToolOutcome(output)
            elif step.tool == "bash":
                output, title, metadata, outcome = await self._bash(session, assistant, part, ref)
            elif step.tool == "write":
                output, title, metadata, outcome = self._write(session, user, args)
            elif step.tool == "question" and state.current:
                output, title, metadata, outcome = await self._question(session, args, ref)
            else:
                raise ToolFailed(f"Model tried to call unavailable tool '{step.tool}'.")
        except ToolFailed as failure:
            part.state = ToolStateError(
                input=args, error=str(failure), time=ToolTime(start=start, end=state.clock_ms())
            )
            outcome = ToolOutcome(str(failure), halt=failure.halt)
        else:
            part.state = ToolStateCompleted(
                input=args,
                output=output,
                title=title,
                metadata=metadata,
                time=ToolTime(start=start, end=state.clock_ms()),
            )
        del open_parts[part.id]
        state.put_part(session, assistant, part)
        return outcome

    async def _bash(
        self, session: Session, assistant: MessageRecord, part: ToolPart, ref: ToolRef
    ) -> tuple[str, str, dict[str, Any], ToolOutcome]:
        state = self._state
        args = part.state.input
        command = str(args.get("command", ""))
        try:
            pending = self._pending.ask_permission(
                session,
                permission="bash",
                patterns=[command],
                metadata={"command": command},
                always=[tools.always_pattern(command)],
                tool=ref,
                title=command,
            )
        except PermissionDenied as denied:
            raise ToolFailed(str(denied), halt=True) from None
        if pending is not None:
            outcome = await self._signal.wait_for(lambda: pending.outcome)
            if outcome == "reject":
                if pending.message:
                    raise ToolFailed(tools.corrected(pending.message))
                raise ToolFailed(tools.REJECTED, halt=True)
        output = tools.bash_output(command)
        assert isinstance(part.state, ToolStateRunning)
        for shown in ("", output):
            part.state = msgspec.structs.replace(part.state, metadata={"output": shown})
            state.put_part(session, assistant, part)
        metadata = {"output": output, "exit": 0, "truncated": False}
        return output, command, metadata, ToolOutcome(output)

    def _write(
        self, session: Session, user: MessageRecord, args: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any], ToolOutcome]:
        state = self._state
        instance = state.instance(session.directory)
        content = str(args.get("content", ""))
        path = str(args.get("filePath", "file.txt"))
        existed = tools.write_result(session.directory, path, existed=False)[0] in instance.files
        absolute, title, metadata = tools.write_result(session.directory, path, existed=existed)
        instance.files[absolute] = content
        digest = hashlib.sha1(
            f"{instance.snapshot}\0{absolute}\0{content}".encode(), usedforsecurity=False
        )
        instance.snapshot = digest.hexdigest()
        state.bus.publish(session.directory, "file.edited", {"file": absolute})
        watcher = {"file": absolute, "event": "change" if existed else "add"}
        state.bus.publish(session.directory, "file.watcher.updated", watcher)
        diff = tools.new_file_diff(title, content)
        user.diffs = [d for d in user.diffs if d.file != title] + [diff]
        output = "Wrote file successfully."
        return output, title, metadata, ToolOutcome(output, patch_files=[absolute])

    async def _question(
        self, session: Session, args: dict[str, Any], ref: ToolRef
    ) -> tuple[str, str, dict[str, Any], ToolOutcome]:
        questions = msgspec.convert(args.get("questions", []), list[QuestionInfo])
        pending = self._pending.ask_question(session, questions, ref)
        await self._signal.wait_until(lambda: pending.settled)
        if pending.answers is None:
            raise ToolFailed(tools.QUESTION_DISMISSED, halt=True)
        output = tools.question_output(questions, pending.answers)
        title = tools.question_title(questions)
        return output, title, {"answers": pending.answers}, ToolOutcome(output)


class ToolFailed(Exception):
    """A tool call fails; ``halt``: the loop stops after this step."""

    def __init__(self, message: str, *, halt: bool = False) -> None:
        super().__init__(message)
        self.halt = halt
