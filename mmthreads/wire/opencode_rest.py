"""OpenCode REST bodies that only the client needs: health, error answers, providers, requests.

*Their* shapes (``reference/opencode-server-api.md`` §2), read leniently (unknown fields ignored,
missing ones defaulted) and written exactly: request bodies omit what the caller left unset.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from mmthreads.wire.opencode_resources import ErrorData, Wire

__all__ = [
    "Capabilities",
    "CreateSessionBody",
    "ErrorBody",
    "FilePartInput",
    "Health",
    "LegacyPermissionReplyBody",
    "Modalities",
    "Model",
    "PartInput",
    "PermissionReplyBody",
    "PromptBody",
    "PromptModel",
    "Provider",
    "ProviderList",
    "QuestionReplyBody",
    "TextPartInput",
]


# --- errors and health


class ErrorBody(Wire, frozen=True, kw_only=True):
    """An error answer: NamedError ``{name, data: {message}}`` or Effect ``{_tag, message}``."""

    name: str | None = None
    data: ErrorData | None = None
    tag: str | None = msgspec.field(name="_tag", default=None)
    message: str | None = None


class Health(Wire, frozen=True, kw_only=True):
    """``GET /global/health``."""

    healthy: bool = False
    version: str = ""


# --- providers ---------------------------------------------------------------------------------


class Modalities(Wire, frozen=True, kw_only=True):
    """Which kinds of content a model takes or gives."""

    text: bool = True
    image: bool = False
    pdf: bool = False
    audio: bool = False
    video: bool = False


class Capabilities(Wire, frozen=True, kw_only=True):
    """A model's capabilities (``GET /provider``)."""

    reasoning: bool = False
    attachment: bool = False
    toolcall: bool = False
    input: Modalities = Modalities()
    output: Modalities = Modalities()


class Model(Wire, frozen=True, kw_only=True):
    """A model of a provider."""

    id: str
    provider_id: str = msgspec.field(name="providerID", default="")
    name: str = ""
    capabilities: Capabilities | None = None


class Provider(Wire, frozen=True, kw_only=True):
    """A provider and its models."""

    id: str
    name: str = ""
    source: str = ""
    models: dict[str, Model] = msgspec.field(default_factory=dict)


class ProviderList(Wire, frozen=True, kw_only=True):
    """``GET /provider``: ``{all, default: {providerID: modelID}, connected}``."""

    all: list[Provider] = msgspec.field(default_factory=list)
    default: dict[str, str] = msgspec.field(default_factory=dict)
    connected: list[str] = msgspec.field(default_factory=list)


# --- request bodies (ours to send, in their shapes) --------------------------------------------


class TextPartInput(Wire, frozen=True, kw_only=True, tag="text", tag_field="type"):
    """A prompt's text."""

    text: str


class FilePartInput(Wire, frozen=True, kw_only=True, tag="file", tag_field="type"):
    """A prompt's file: ``url`` is a ``data:<mime>;base64,…`` URI."""

    mime: str
    url: str
    filename: str | None = None


PartInput: TypeAlias = TextPartInput | FilePartInput


class PromptModel(Wire, frozen=True, kw_only=True):
    """The model of one prompt: ``{providerID, modelID}``."""

    provider_id: str = msgspec.field(name="providerID")
    model_id: str = msgspec.field(name="modelID")


class PromptBody(Wire, frozen=True, kw_only=True, omit_defaults=True):
    """The body of ``POST /session/{id}/prompt_async``."""

    parts: list[PartInput]
    model: PromptModel | None = None
    agent: str | None = None


class CreateSessionBody(Wire, frozen=True, kw_only=True, omit_defaults=True):
    """The body of ``POST /session``."""

    title: str | None = None
    parent_id: str | None = msgspec.field(name="parentID", default=None)


class PermissionReplyBody(Wire, frozen=True, kw_only=True, omit_defaults=True):
    """The body of ``POST /permission/{id}/reply``."""

    reply: str
    message: str | None = None


class LegacyPermissionReplyBody(Wire, frozen=True, kw_only=True):
    """The body of the legacy ``POST /session/{id}/permissions/{pid}``."""

    response: str


class QuestionReplyBody(Wire, frozen=True, kw_only=True):
    """The body of ``POST /question/{id}/reply``: one list of labels per question."""

    answers: list[list[str]]
