"""Model choice: the numbered list of !models and the exact answers of !model."""

from __future__ import annotations

import pytest

from mmthreads.core.commands import COMMANDS, CommandContext, Lane, StatusSnapshot, answer_command
from mmthreads.core.model_choice import (
    ModelChoice,
    ModelEntry,
    ModelsView,
    choose_model,
    current_model_text,
    models_text,
    models_view,
)
from mmthreads.wire.opencode_normalise import ModelInfo, ProviderCatalog

CATALOG = ProviderCatalog(
    connected=("stub", "anthropic"),
    models=(
        ModelInfo(provider_id="anthropic", model_id="claude-sonnet", name="Claude Sonnet"),
        ModelInfo(provider_id="stub", model_id="stub-vision", name="Stub Vision"),
        ModelInfo(provider_id="stub", model_id="stub-model", name="Stub Model"),
        ModelInfo(provider_id="anthropic", model_id="claude-haiku", name="claude-haiku"),
    ),
    defaults={"stub": "stub-model", "anthropic": "claude-sonnet"},
)
VIEW = models_view(CATALOG, current="")
CHOSEN = models_view(CATALOG, current="anthropic/claude-haiku")

LISTING = """\
**Models** (4, of the connected providers)
1. `stub/stub-model` — Stub Model · server default · **current**
2. `stub/stub-vision` — Stub Vision
3. `anthropic/claude-haiku`
4. `anthropic/claude-sonnet` — Claude Sonnet
Choose with `!model <number>` or `!model provider/model`; `!model default` goes back to the \
server's default."""


def test_the_list_is_ordered_by_connected_provider_then_model_id() -> None:
    assert [e.key for e in VIEW.models] == [
        "stub/stub-model",
        "stub/stub-vision",
        "anthropic/claude-haiku",
        "anthropic/claude-sonnet",
    ]
    assert VIEW.default == "stub/stub-model"
    assert VIEW.current == ""


def test_models_marks_the_default_as_current_when_nothing_was_chosen() -> None:
    assert models_text(VIEW) == LISTING


def test_models_marks_the_sessions_choice() -> None:
    lines = models_text(CHOSEN).splitlines()
    assert lines[1] == "1. `stub/stub-model` — Stub Model · server default"
    assert lines[3] == "3. `anthropic/claude-haiku` · **current**"


def test_a_choice_the_server_no_longer_offers_is_said() -> None:
    view = models_view(CATALOG, current="gone/model")
    assert "Current: `gone/model` (not offered by the server now)" in models_text(view)


def test_no_models_and_an_unreadable_catalogue() -> None:
    assert models_text(ModelsView()) == (
        "**Models** (0)\n"
        "The OpenCode server has no connected provider; connect one in OpenCode first."
    )
    assert models_text(ModelsView(error="OpenCode answered 401 Unauthorized")) == (
        ":warning: **Models not available**\nOpenCode answered 401 Unauthorized"
    )


def test_the_current_model() -> None:
    assert current_model_text(VIEW) == "Model: server default: `stub/stub-model` — Stub Model"
    assert current_model_text(CHOSEN) == (
        "Model: `anthropic/claude-haiku`\n`!models` lists the others."
    )
    assert current_model_text(ModelsView(error="down")) == "Model: server default (unknown: down)"
    assert current_model_text(ModelsView()) == "Model: server default (the server names none)"


@pytest.mark.parametrize(
    ("argument", "model", "text"),
    [
        (
            "2",
            "stub/stub-vision",
            "Model set to `stub/stub-vision` — Stub Vision; the next prompts use it.",
        ),
        (
            " 3 ",
            "anthropic/claude-haiku",
            "Model set to `anthropic/claude-haiku`; the next prompts use it.",
        ),
        (
            "anthropic/claude-sonnet",
            "anthropic/claude-sonnet",
            "Model set to `anthropic/claude-sonnet` — Claude Sonnet; the next prompts use it.",
        ),
        ("default", "", "Model: back to the server default: `stub/stub-model`."),
        ("RESET", "", "Model: back to the server default: `stub/stub-model`."),
    ],
)
def test_valid_choices(argument: str, model: str, text: str) -> None:
    pick = choose_model(VIEW, argument)
    assert pick.choice == ModelChoice(model=model)
    assert pick.text == text


@pytest.mark.parametrize(
    ("argument", "why"),
    [
        ("0", "`0` is not a number from 1 to 4"),
        ("5", "`5` is not a number from 1 to 4"),
        ("openai/gpt-5", "`openai/gpt-5` is not offered by the server's connected providers"),
        ("sonnet", "`sonnet` is neither a number from `!models` nor `provider/model`"),
        ("²", "`²` is neither a number from `!models` nor `provider/model`"),
        ("-1", "`-1` is neither a number from `!models` nor `provider/model`"),
    ],
)
def test_invalid_choices_get_a_clear_answer(argument: str, why: str) -> None:
    pick = choose_model(VIEW, argument)
    assert pick.choice is None
    assert pick.text == f"**No such model**\n{why}; `!models` lists them."


def test_no_choice_without_the_catalogue_except_the_default() -> None:
    down = ModelsView(current="stub/stub-model", error="OpenCode is unreachable")
    assert choose_model(down, "1").choice is None
    assert choose_model(down, "1").text == (
        ":warning: **Models not available**\nOpenCode is unreachable"
    )
    assert choose_model(down, "default").choice == ModelChoice(model="")
    assert choose_model(ModelsView(), "1").text == (
        "**No such model**\n`1` is not a number (the list is empty); `!models` lists them."
    )


def test_entry_key() -> None:
    assert ModelEntry(provider_id="a", model_id="b/c").key == "a/b/c"


def _ctx(models: ModelsView | None) -> CommandContext:
    status = StatusSnapshot(
        mattermost_connected=True,
        servers=(),
        threads_by_state={},
        queued_prompts=0,
        started_ms=0,
        mapping_path="/m.json",
    )
    return CommandContext(now_ms=0, site_url="", sessions=(), status=status, models=models)


def test_the_commands_answer_through_the_table() -> None:
    thread = Lane.SESSION_THREAD
    assert answer_command("models", "", _ctx(VIEW), lane=thread) == LISTING
    assert answer_command("model", "", _ctx(VIEW), lane=thread) == current_model_text(VIEW)
    assert answer_command("model", "2", _ctx(VIEW), lane=thread) == choose_model(VIEW, "2").text
    assert answer_command("models", "", _ctx(None), lane=thread).startswith(
        ":warning: **Models not available**"
    )
    assert COMMANDS.lookup(Lane.MAIN_DM, "model") is None
