"""Permission and question cards: their texts, and reading the owner's answer."""

from __future__ import annotations

import pytest

from mmthreads.core import cards
from mmthreads.core.agent_events import PermissionAsked, Question, QuestionAsked, QuestionOption

BASH = PermissionAsked(
    request_id="per_1",
    session_id="ses_1",
    permission="bash",
    patterns=("echo hi",),
    always=("echo *",),
    metadata={"command": "echo hi"},
)
OPTIONS = tuple(QuestionOption(label=label) for label in ("Red", "Green", "Blue"))


def _ask(*questions: Question) -> QuestionAsked:
    return QuestionAsked(request_id="que_1", session_id="ses_1", questions=questions)


ONE = _ask(Question(question="Colour?", options=OPTIONS))
MANY = _ask(Question(question="Colours?", options=OPTIONS, multiple=True))
STRICT = _ask(Question(question="Colour?", options=OPTIONS, custom=False))
OPEN = _ask(Question(question="Name?", custom=False))
TWO = _ask(Question(question="A?", options=OPTIONS), Question(question="B?", options=OPTIONS))


# --- permission cards --------------------------------------------------------------------------


def test_a_permission_card_shows_the_command_and_what_always_allows() -> None:
    card = cards.permission_card(BASH, cards.permission_waiting(timeout=1800))
    assert card.split("\n\n") == [
        ":lock: **Permission needed: bash**",
        "```\necho hi\n```",
        ":infinity: would also allow from now on: `echo *`",
        "React :white_check_mark: to approve once, :infinity: to approve always, :x: to reject."
        " Without an answer it is rejected after 30 min.",
    ]


def test_patterns_are_shown_when_there_is_no_command() -> None:
    edit = PermissionAsked(
        request_id="per_2", session_id="s", permission="edit", patterns=("a.py", "b`c.py")
    )
    card = cards.permission_card(edit, cards.permission_waiting(timeout=0))
    assert card.split("\n\n") == [
        ":lock: **Permission needed: edit**",
        "`a.py`, ``b`c.py``",
        "React :white_check_mark: to approve once, :infinity: to approve always, :x: to reject.",
    ]


def test_a_command_with_backticks_keeps_its_code_block() -> None:
    request = PermissionAsked(
        request_id="p", session_id="s", permission="bash", metadata={"command": "echo ```"}
    )
    assert "````\necho ```\n````" in cards.permission_card(request, "")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (
            cards.permission_decided("once", by="alice"),
            ":white_check_mark: **Approved once** by @alice.",
        ),
        (cards.permission_decided("always"), ":infinity: **Approved always**."),
        (
            cards.permission_decided("reject", by="alice", reason="no\nnot now"),
            ":x: **Rejected** by @alice, with this reason:\n> no\n> not now",
        ),
        (cards.permission_settled_elsewhere("reject"), ":x: **Rejected** outside this thread."),
        (cards.permission_timed_out(1800), ":alarm_clock: **Rejected**: no answer within 30 min."),
        (
            cards.permission_rejecting(45, by="alice"),
            ":x: **Rejecting** by @alice: reply in this thread within 45 s to tell the agent why,"
            " and it goes on with your reason; without a reply it stops.",
        ),
    ],
)
def test_permission_outcomes(status: str, text: str) -> None:
    assert status == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.6, "1 min"), (90, "1 min"), (3600, "1 h"), (5400, "1 h 30 min")],
)
def test_durations(seconds: float, text: str) -> None:
    assert cards.format_seconds(seconds) == text


def test_the_model_is_told_why_a_request_timed_out() -> None:
    assert cards.timeout_reject_message(60) == (
        "No answer from the user within 1 minute; the request was rejected."
    )
    assert cards.timeout_reject_message(1800).startswith("No answer from the user within 30 ")


# --- question cards ----------------------------------------------------------------------------


def test_a_question_card_numbers_the_options() -> None:
    request = _ask(
        Question(
            question="Which colour?",
            header="Colour",
            options=(QuestionOption(label="Red", description="warm"), QuestionOption(label="*")),
        )
    )
    assert cards.question_card(request, cards.question_waiting(request)).split("\n\n") == [
        ":question: **The agent asks**",
        "**Colour**\nWhich colour?\n1. **Red**: warm\n2. **\\***",
        "Reply in this thread with the number of an option (1 to 2) or your own answer."
        " React :x: to dismiss the question.",
    ]


@pytest.mark.parametrize(
    ("request_", "how"),
    [
        (MANY, "one or more option numbers (e.g. `1, 3`) or your own answer"),
        (STRICT, "the number of an option (1 to 3)"),
        (OPEN, "your answer"),
        (
            TWO,
            "one line per question, in order (1: the number of an option (1 to 3) or your own "
            "answer; 2: the number of an option (1 to 3) or your own answer)",
        ),
    ],
)
def test_the_card_says_how_to_answer(request_: QuestionAsked, how: str) -> None:
    assert cards.question_waiting(request_) == (
        f"Reply in this thread with {how}. React :x: to dismiss the question."
    )


def test_question_outcomes() -> None:
    answers = (("Red", "Blue"), ("a*b",))
    assert cards.question_answered(answers, by="alice") == (
        ":white_check_mark: **Answered** by @alice: Red, Blue; a\\*b"
    )
    assert cards.question_answered((("Red",),)) == (
        ":white_check_mark: **Answered** outside this thread: Red"
    )
    assert cards.question_dismissed(by="alice") == ":x: **Dismissed** by @alice."
    assert cards.question_dismissed() == ":x: **Dismissed** outside this thread."


# --- reading answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "text", "answers"),
    [
        (ONE, "2", (("Green",),)),
        (ONE, "  3 \n", (("Blue",),)),
        (ONE, "green", (("Green",),)),
        (ONE, "Something else", (("Something else",),)),
        (ONE, "Two lines\nof text", (("Two lines\nof text",),)),
        (MANY, "1,3", (("Red", "Blue"),)),
        (MANY, "1 3", (("Red", "Blue"),)),
        (MANY, "3; 1, 3", (("Blue", "Red"),)),
        (OPEN, "Ada", (("Ada",),)),
        (OPEN, "42", (("42",),)),
        (TWO, "1\n\nmy own", (("Red",), ("my own",))),
    ],
)
def test_answers_that_are_read(
    request_: QuestionAsked, text: str, answers: tuple[tuple[str, ...], ...]
) -> None:
    assert cards.parse_answers(request_, text) == answers


@pytest.mark.parametrize(
    ("request_", "text", "problem"),
    [
        (ONE, "", "The answer is empty."),
        (ONE, "4", "There is no option 4."),
        (ONE, "0", "There is no option 0."),
        (ONE, "1, 2", "This question takes a single option."),
        (MANY, "1, 9", "There is no option 9."),
        (STRICT, "purple", "This question takes one of its options, by number."),
        (TWO, "1", "There are 2 questions: answer each on its own line, in order."),
        (TWO, "1\n7", "Question 2: There is no option 7."),
    ],
)
def test_replies_that_are_not_answers(request_: QuestionAsked, text: str, problem: str) -> None:
    with pytest.raises(cards.AnswerError) as caught:
        cards.parse_answers(request_, text)
    assert str(caught.value) == problem


def test_the_help_says_why_and_how() -> None:
    assert cards.answer_help(STRICT, "There is no option 4.") == (
        ":information_source: **Not an answer**: There is no option 4. Reply in this thread with"
        " the number of an option (1 to 3). React :x: to dismiss the question."
    )


def test_secrets_in_a_permission_card_are_redacted() -> None:
    from mmthreads.core.agent_events import PermissionAsked
    from mmthreads.core.cards import permission_card
    from mmthreads.core.redact import REDACTED

    token = "ghp_" + "a1B2" * 9
    request = PermissionAsked(
        session_id="ses_1",
        request_id="per_1",
        permission="bash",
        patterns=(f"curl -H 'Authorization: token {token}' *",),
        always=(f"curl -H 'Authorization: token {token}' *",),
        metadata={"command": f"git push https://me:hunter2@example.com/repo.git {token}"},
    )
    card = permission_card(request, "waiting")
    assert token not in card
    assert "hunter2" not in card
    assert REDACTED in card
    assert "git push https://me:" in card
