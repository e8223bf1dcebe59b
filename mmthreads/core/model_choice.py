"""Choosing a session's model: the numbered list of ``!models`` and the answers of ``!model``.

The runtime fetches the session's server's ``GET /provider`` and hands it over as a
:class:`ModelsView`: the models of the *connected* providers, numbered in a fixed order
(providers as the server lists them as connected, models by id within a provider), the server's
default and the session's current choice.  Everything here is pure; the runtime persists what
:func:`choose_model` picked in the session's mapping (``model``, ``"provider/model"``) and sends
it with every prompt of that session.

The numbers are only as stable as the server's catalogue: ``!model 2`` means the second model of
the list as it is *now*, which is the list ``!models`` just showed unless a provider was
connected in between.  ``!model provider/model`` names one for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from mmthreads.core.render import code_span, escape_markdown

if TYPE_CHECKING:
    from mmthreads.wire.opencode_normalise import ProviderCatalog

__all__ = [
    "MODELS_UNAVAILABLE",
    "NO_SUCH_MODEL",
    "ModelChoice",
    "ModelEntry",
    "ModelPick",
    "ModelsView",
    "choose_model",
    "current_model_text",
    "models_text",
    "models_view",
]

#: The heading of the answer when the server's models cannot be read.
MODELS_UNAVAILABLE: Final = ":warning: **Models not available**"
#: The heading of the answer to ``!model`` with an argument that names no offered model.
NO_SUCH_MODEL: Final = "**No such model**"
#: ``!model default`` (or ``reset``) drops the session's choice: the server's default applies.
_BACK_TO_DEFAULT: Final = frozenset({"default", "reset"})


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One model of the list.

    Attributes:
        provider_id: The provider's id (``anthropic``).
        model_id: The model's id within the provider (``claude-sonnet-4-5``).
        name: Its display name, if the server gave one.
    """

    provider_id: str
    model_id: str
    name: str = ""

    @property
    def key(self) -> str:
        """``provider/model``, as the mapping file and ``!model`` write it."""
        return f"{self.provider_id}/{self.model_id}"


class ModelsView(msgspec.Struct, frozen=True, kw_only=True):
    """What ``!models`` and ``!model`` show about one session.

    Attributes:
        models: The connected providers' models, in list order (``!model 1`` is the first).
        default: The server's default model (``provider/model``), "" when it has none.
        current: The session's choice (``provider/model``), "" for the server's default.
        error: Why the server's models could not be read ("" when they were).
    """

    models: tuple[ModelEntry, ...] = ()
    default: str = ""
    current: str = ""
    error: str = ""


class ModelChoice(msgspec.Struct, frozen=True, kw_only=True):
    """A valid ``!model <argument>``: the session's new choice.

    Attributes:
        model: ``provider/model``, or "" to go back to the server's default.
    """

    model: str


class ModelPick(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of ``!model <argument>``.

    Attributes:
        choice: The new choice to persist, or None when the argument was refused.
        text: The answer to post.
    """

    choice: ModelChoice | None
    text: str


def models_view(catalog: ProviderCatalog, *, current: str) -> ModelsView:
    """The list ``!models`` numbers, from a server's ``GET /provider``.

    Args:
        catalog: The normalised provider listing (connected providers' models only).
        current: The session's choice (``provider/model``), "" for none.

    Returns:
        The view, models ordered by connected provider, then by model id.
    """
    rank = {provider: index for index, provider in enumerate(catalog.connected)}
    entries = sorted(
        (
            ModelEntry(provider_id=m.provider_id, model_id=m.model_id, name=m.name)
            for m in catalog.models
            if m.provider_id in rank
        ),
        key=lambda e: (rank[e.provider_id], e.model_id),
    )
    default = catalog.default_model()
    return ModelsView(
        models=tuple(entries),
        default=f"{default[0]}/{default[1]}" if default else "",
        current=current,
    )


def _entry_line(number: int, entry: ModelEntry, view: ModelsView) -> str:
    fields = [f"{number}. {code_span(entry.key)}"]
    if entry.name and entry.name != entry.model_id:
        fields.append(f"— {escape_markdown(entry.name)}")
    marks = []
    if entry.key == view.default:
        marks.append("server default")
    if entry.key == (view.current or view.default):
        marks.append("**current**")
    if marks:
        fields.append("· " + " · ".join(marks))
    return " ".join(fields)


def models_text(view: ModelsView) -> str:
    """The answer to ``!models``: the numbered list, the current model marked.

    Args:
        view: The server's models and the session's choice.

    Returns:
        A heading with the count, one line per model, and how to choose; the reason instead
        when the models could not be read.
    """
    if view.error:
        return f"{MODELS_UNAVAILABLE}\n{escape_markdown(view.error)}"
    if not view.models:
        return (
            "**Models** (0)\n"
            "The OpenCode server has no connected provider; connect one in OpenCode first."
        )
    lines = [f"**Models** ({len(view.models)}, of the connected providers)"]
    lines += [_entry_line(number, e, view) for number, e in enumerate(view.models, start=1)]
    if view.current and all(e.key != view.current for e in view.models):
        lines.append(f"Current: {code_span(view.current)} (not offered by the server now)")
    lines.append(
        "Choose with `!model <number>` or `!model provider/model`; "
        "`!model default` goes back to the server's default."
    )
    return "\n".join(lines)


def current_model_text(view: ModelsView) -> str:
    """The answer to ``!model`` without an argument: the model this session's prompts use.

    Args:
        view: The server's models (possibly unreadable) and the session's choice.

    Returns:
        ``Model: `provider/model` — Name`` for a choice of the session, else ``Model: server
        default: `provider/model```.
    """
    if view.current:
        return f"Model: {_described(view.current, view)}\n`!models` lists the others."
    if view.default:
        return f"Model: server default: {_described(view.default, view)}"
    if view.error:
        return f"Model: server default (unknown: {escape_markdown(view.error)})"
    return "Model: server default (the server names none)"


def _described(key: str, view: ModelsView) -> str:
    for entry in view.models:
        if entry.key == key and entry.name and entry.name != entry.model_id:
            return f"{code_span(key)} — {escape_markdown(entry.name)}"
    return code_span(key)


def choose_model(view: ModelsView, argument: str) -> ModelPick:
    """The answer to ``!model <argument>`` and the choice it makes, if any.

    Args:
        view: The server's models and the session's choice.
        argument: A number from ``!models``, ``provider/model``, or ``default``.

    Returns:
        The new choice and its confirmation, or no choice and the reason.
    """
    argument = argument.strip()
    if argument.lower() in _BACK_TO_DEFAULT:
        where = f": {code_span(view.default)}" if view.default else ""
        return ModelPick(
            choice=ModelChoice(model=""),
            text=f"Model: back to the server default{where}.",
        )
    if view.error:
        return ModelPick(choice=None, text=f"{MODELS_UNAVAILABLE}\n{escape_markdown(view.error)}")
    entry: ModelEntry | None = None
    if argument.isascii() and argument.isdigit():
        number = int(argument)
        if not 1 <= number <= len(view.models):
            span = f"from 1 to {len(view.models)}" if view.models else "(the list is empty)"
            return _refused(f"{code_span(argument)} is not a number {span}")
        entry = view.models[number - 1]
    elif "/" in argument:
        entry = next((e for e in view.models if e.key == argument), None)
        if entry is None:
            return _refused(
                f"{code_span(argument)} is not offered by the server's connected providers"
            )
    else:
        return _refused(
            f"{code_span(argument)} is neither a number from `!models` nor `provider/model`"
        )
    return ModelPick(
        choice=ModelChoice(model=entry.key),
        text=f"Model set to {_described(entry.key, view)}; the next prompts use it.",
    )


def _refused(why: str) -> ModelPick:
    return ModelPick(choice=None, text=f"{NO_SUCH_MODEL}\n{why}; `!models` lists them.")
