"""A stub OpenAI-compatible model, so that a real ``opencode serve`` runs offline.

It serves ``POST /v1/chat/completions`` on 127.0.0.1 and answers every request from the
scripted agent (:mod:`mmthreads.harness.script`), so one prompt makes the same turn whether the
agent is a real OpenCode driven by this stub or the OpenCode stand-in.  Every request is
recorded, so a test can assert what the model received::

    async with open_stub_model(chunk_delay=0.01) as stub:
        ...  # point OpenCode's provider baseURL at stub.url
        request = await stub.wait_request(lambda r: "ECHO_FILES" in r.prompt)
        assert request.attachments[0].filename == "notes.txt"

See ``docs/harness-stub-model.md``.
"""

from __future__ import annotations

from mmthreads.harness.stub_model.app import StubModelApp
from mmthreads.harness.stub_model.request import ChatMessage, ChatRequest, Turn, read_turn
from mmthreads.harness.stub_model.response import Frame, Usage, stream_frames, title_for
from mmthreads.harness.stub_model.server import RunningStubModel, open_stub_model, serve_stub_model
from mmthreads.harness.stub_model.state import (
    COMPLETIONS_PATH,
    STUB_MODEL_ID,
    Answer,
    Planner,
    RecordedRequest,
    StubModel,
)

__all__ = [
    "COMPLETIONS_PATH",
    "STUB_MODEL_ID",
    "Answer",
    "ChatMessage",
    "ChatRequest",
    "Frame",
    "Planner",
    "RecordedRequest",
    "RunningStubModel",
    "StubModel",
    "StubModelApp",
    "Turn",
    "Usage",
    "open_stub_model",
    "read_turn",
    "serve_stub_model",
    "stream_frames",
    "title_for",
]
