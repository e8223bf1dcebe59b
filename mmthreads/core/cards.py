"""Permission and question cards: what they say, and how an owner's answer is read.

When OpenCode waits for a human (a permission for a tool call, or the question tool), the bridge
posts a *card* in the session's thread and edits it as the request moves on. A card is a fixed
body (what is asked) followed by one status paragraph (how to answer, or what became of it), so
the runtime re-renders the whole card from the request and a status line on every change:

* a permission card shows the permission, the exact command or patterns, and what "always" would
  allow from now on; the owner reacts ✅ (once), ♾️ (always) or ❌ (reject). A reject may carry a
  reason: OpenCode gives the model the reason and the run goes on, while a reject without one
  stops the run (``reference/opencode-server-api.md`` §2.7);
* a question card numbers each question's options; the owner answers by replying in the thread
  (:func:`parse_answers`) and may dismiss the question with ❌.

Everything here is pure: texts in, texts out; durations are seconds given by the caller.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from mmthreads.core.redact import redact
from mmthreads.core.render import code_span, escape_markdown

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mmthreads.core.agent_events import PermissionAsked, Question, QuestionAsked

__all__ = [
    "EXPIRED",
    "PERMISSION_PROP",
    "QUESTION_PROP",
    "REASON_NOT_TAKEN",
    "AnswerError",
    "answer_help",
    "format_seconds",
    "parse_answers",
    "permission_card",
    "permission_decided",
    "permission_rejecting",
    "permission_settled_elsewhere",
    "permission_timed_out",
    "permission_waiting",
    "question_answered",
    "question_card",
    "question_dismissed",
    "question_waiting",
    "timeout_reject_message",
]

#: The post prop that marks a permission card with its request id.
PERMISSION_PROP: Final = "mmthreads_permission_id"
#: The post prop that marks a question card with its request id.
QUESTION_PROP: Final = "mmthreads_question_id"

#: The status of a card whose request OpenCode no longer has (it restarted, or answered it
#: while the bridge was not listening): nothing was approved on the owner's behalf.
EXPIRED: Final = ":hourglass: **Expired**: OpenCode no longer waits for this answer."

_OUTCOMES: Final = {
    "once": ":white_check_mark: **Approved once**",
    "always": ":infinity: **Approved always**",
    "reject": ":x: **Rejected**",
}
# A reply made only of option numbers: "2", "1,3", "1 3", "1, 3; 4".
_NUMBERS: Final = re.compile(r"\d+(?:\s*[,;\s]\s*\d+)*")
_LONGEST_BACKTICKS: Final = re.compile(r"`+")


class AnswerError(ValueError):
    """A reply that does not answer the question; ``str()`` says why, in one sentence."""


# --- small helpers -----------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A duration as the cards show it: ``45 s``, ``30 min``, ``2 h``, ``1 h 30 min``."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _code_block(text: str) -> str:
    # The fence must be longer than any backtick run inside, or the block ends early.
    longest = max((len(run) for run in _LONGEST_BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.strip().splitlines())


def _by(user: str) -> str:
    return f" by @{user}" if user else ""


# --- permission cards --------------------------------------------------------------------------


def permission_card(request: PermissionAsked, status: str) -> str:
    """The permission card: what is asked, then ``status`` (one of the ``permission_*`` lines).

    Args:
        request: The pending request.
        status: How to answer it, or what became of it.

    Returns:
        The card's markdown.
    """
    # Obvious secrets in the command or patterns are redacted (``core.redact``): the card is
    # a chat post like any other.
    blocks = [f":lock: **Permission needed: {escape_markdown(request.permission or 'tool')}**"]
    if request.title.strip():
        blocks[0] += f"\n{escape_markdown(redact(request.title))}"
    command = request.metadata.get("command")
    if isinstance(command, str) and command.strip():
        blocks.append(_code_block(redact(command)))
    elif request.patterns:
        blocks.append(", ".join(code_span(redact(pattern)) for pattern in request.patterns))
    if request.always:
        allowed = ", ".join(code_span(redact(pattern)) for pattern in request.always)
        blocks.append(f":infinity: would also allow from now on: {allowed}")
    blocks.append(status)
    return "\n\n".join(blocks)


def permission_waiting(*, timeout: float) -> str:
    """How to answer a permission card.

    Args:
        timeout: Seconds after which an unanswered request is rejected; 0 for never.
    """
    text = "React :white_check_mark: to approve once, :infinity: to approve always, :x: to reject."
    if timeout > 0:
        text += f" Without an answer it is rejected after {format_seconds(timeout)}."
    return text


def permission_rejecting(window: float, *, by: str = "") -> str:
    """The status while a reject waits for its reason (the owner's next reply in the thread)."""
    return (
        f":x: **Rejecting**{_by(by)}: reply in this thread within {format_seconds(window)} to "
        "tell the agent why, and it goes on with your reason; without a reply it stops."
    )


#: Added to a reject's outcome when the server's (legacy) route took no reason.
REASON_NOT_TAKEN: Final = (
    "_This OpenCode server takes no reason with a rejection: the run stopped without it._"
)


def permission_decided(reply: str, *, by: str = "", reason: str = "") -> str:
    """The status once the owner answered: ``once``, ``always`` or ``reject`` (with a reason)."""
    text = _OUTCOMES.get(reply, f"**{escape_markdown(reply)}**") + _by(by) + "."
    if reason.strip():
        text = f"{text[:-1]}, with this reason:\n{_quote(reason)}"
    return text


def permission_settled_elsewhere(reply: str) -> str:
    """The status of a request answered outside this thread (the TUI, another client)."""
    return _OUTCOMES.get(reply, f"**{escape_markdown(reply)}**") + " outside this thread."


def permission_timed_out(timeout: float) -> str:
    """The status of a request rejected because nobody answered in time."""
    return f":alarm_clock: **Rejected**: no answer within {format_seconds(timeout)}."


def timeout_reject_message(timeout: float) -> str:
    """What the model is told when a request is rejected for want of an answer."""
    minutes = max(round(timeout / 60), 1)
    unit = "minute" if minutes == 1 else "minutes"
    return f"No answer from the user within {minutes} {unit}; the request was rejected."


# --- question cards ----------------------------------------------------------------------------


def question_card(request: QuestionAsked, status: str) -> str:
    """The question card: each question with its numbered options, then ``status``.

    Args:
        request: The pending question request.
        status: How to answer it (:func:`question_waiting`), or what became of it.

    Returns:
        The card's markdown.
    """
    several = len(request.questions) > 1
    blocks = [":question: **The agent asks**"]
    for number, question in enumerate(request.questions, start=1):
        heading = escape_markdown(question.header) if question.header.strip() else ""
        if several:
            heading = f"{number}. {heading}".rstrip()
        lines = [f"**{heading}**"] if heading else []
        lines.append(question.question.strip())
        for index, option in enumerate(question.options, start=1):
            line = f"{index}. **{escape_markdown(option.label)}**"
            if option.description.strip():
                line += f": {escape_markdown(option.description)}"
            lines.append(line)
        blocks.append("\n".join(lines))
    blocks.append(status)
    return "\n\n".join(blocks)


def _how_to_answer(question: Question) -> str:
    count = len(question.options)
    if not count:
        return "your answer"
    numbers = f"the number of an option (1 to {count})" if count > 1 else "1"
    if question.multiple:
        numbers = f"one or more option numbers (e.g. `1, {min(count, 3)}`)" if count > 1 else "1"
    return f"{numbers} or your own answer" if question.custom else numbers


def question_waiting(request: QuestionAsked) -> str:
    """How to answer a question card (what :func:`parse_answers` accepts)."""
    if len(request.questions) == 1:
        how = _how_to_answer(request.questions[0])
        text = f"Reply in this thread with {how}."
    else:
        parts = "; ".join(
            f"{number}: {_how_to_answer(question)}"
            for number, question in enumerate(request.questions, start=1)
        )
        text = f"Reply in this thread with one line per question, in order ({parts})."
    return text + " React :x: to dismiss the question."


def _shown_answers(answers: Sequence[Sequence[str]]) -> str:
    return "; ".join(
        ", ".join(escape_markdown(a) for a in answer) or "(none)" for answer in answers
    )


def question_answered(answers: Sequence[Sequence[str]], *, by: str = "") -> str:
    """The status of an answered question (``by`` "": answered outside this thread)."""
    where = _by(by) if by else " outside this thread"
    return f":white_check_mark: **Answered**{where}: {_shown_answers(answers)}"


def question_dismissed(*, by: str = "") -> str:
    """The status of a dismissed question (``by`` "": dismissed outside this thread)."""
    return f":x: **Dismissed**{_by(by) if by else ' outside this thread'}."


# --- reading an answer -------------------------------------------------------------------------


def _parse_one(question: Question, text: str) -> tuple[str, ...]:
    text = text.strip()
    if not text:
        raise AnswerError("The answer is empty.")
    options = question.options
    if options and _NUMBERS.fullmatch(text):
        numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\d+", text)))
        wrong = [n for n in numbers if not 1 <= n <= len(options)]
        if wrong:
            raise AnswerError(f"There is no option {wrong[0]}.")
        if len(numbers) > 1 and not question.multiple:
            raise AnswerError("This question takes a single option.")
        return tuple(options[n - 1].label for n in numbers)
    for option in options:
        if option.label.strip().casefold() == text.casefold():
            return (option.label,)
    if question.custom or not options:
        return (text,)
    raise AnswerError("This question takes one of its options, by number.")


def parse_answers(request: QuestionAsked, text: str) -> tuple[tuple[str, ...], ...]:
    """Read the owner's reply to a question card: one list of chosen labels per question.

    A reply made only of numbers picks options (several, separated by commas or spaces, where
    the question allows more than one); an option's exact label picks it too; any other text is
    a free answer where the question accepts one. A request with several questions is answered
    one line per question, in order.

    Args:
        request: The pending question request.
        text: The reply's text.

    Returns:
        The answers in OpenCode's shape (``answers: string[][]``).

    Raises:
        AnswerError: The reply does not answer the request; the message says why.
    """
    questions = request.questions
    if len(questions) == 1:
        return (_parse_one(questions[0], text),)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != len(questions):
        raise AnswerError(
            f"There are {len(questions)} questions: answer each on its own line, in order."
        )
    answers = []
    for number, (question, line) in enumerate(zip(questions, lines, strict=True), start=1):
        try:
            answers.append(_parse_one(question, line))
        except AnswerError as exc:
            raise AnswerError(f"Question {number}: {exc}") from None
    return tuple(answers)


def answer_help(request: QuestionAsked, problem: str) -> str:
    """The reply to a post that does not answer a pending question: why, and what works."""
    return f":information_source: **Not an answer**: {problem} {question_waiting(request)}"
