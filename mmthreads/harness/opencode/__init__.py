"""A stand-in for ``opencode serve``: sessions, the agent loop, REST routes and SSE streams.

It plays the scripted agent (``mmthreads.harness.script``) itself, so a bridge can be tested
without OpenCode and without a model.  Shapes and the order of events follow
``reference/opencode-server-api.md`` and the recorded 1.18.33 traces; ``dialect="legacy"``
speaks the pre-1.0.2xx permission and streaming shapes.  Faults come from a ``FaultPlan``.

Layers, outside in: ``server`` (hypercorn behind the TCP relay), ``app`` + ``routes`` (ASGI),
``standin`` (facade, waits, controls), ``agent`` + ``stream`` (Trio tasks), ``state`` +
``pending`` + ``bus`` (sans-IO), ``wire`` (the shapes).
"""

from __future__ import annotations

from mmthreads.harness.opencode.agent import AgentSettings, TurnJob
from mmthreads.harness.opencode.app import OpenCodeApp
from mmthreads.harness.opencode.bus import BusEvent
from mmthreads.harness.opencode.server import (
    OpenCodeServer,
    OpenCodeStandInHandle,
    open_opencode_standin,
    serve_opencode_standin,
)
from mmthreads.harness.opencode.standin import OpenCodeStandIn, RecordedRequest, UnknownModel
from mmthreads.harness.opencode.state import CURRENT_VERSION, LEGACY_VERSION, SessionNotFound

__all__ = [
    "CURRENT_VERSION",
    "LEGACY_VERSION",
    "AgentSettings",
    "BusEvent",
    "OpenCodeApp",
    "OpenCodeServer",
    "OpenCodeStandIn",
    "OpenCodeStandInHandle",
    "RecordedRequest",
    "SessionNotFound",
    "TurnJob",
    "UnknownModel",
    "open_opencode_standin",
    "serve_opencode_standin",
]
