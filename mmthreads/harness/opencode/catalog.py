"""The provider catalogue the stand-in serves at ``GET /provider``.

One provider, ``stub``, as configured in reference §4.3, with two models: ``stub-model`` (text
only, like the recorded runs) and ``stub-vision`` (image and PDF input), so a bridge can test its
capability check before it sends attachments.  Shapes follow the openapi ``Provider`` and
``Model`` schemas.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PROVIDER",
    "STUB_BASE_URL",
    "find_model",
    "provider_list",
]

DEFAULT_PROVIDER: Final = "stub"
DEFAULT_MODEL: Final = "stub-model"
#: The chat-completions endpoint the stub provider points at (reference §4.3).
STUB_BASE_URL: Final = "http://127.0.0.1:18080/v1"


def _model(model_id: str, name: str, *, image: bool, pdf: bool) -> dict[str, Any]:
    return {
        "id": model_id,
        "providerID": DEFAULT_PROVIDER,
        "api": {"id": model_id, "url": STUB_BASE_URL, "npm": "@ai-sdk/openai-compatible"},
        "name": name,
        "capabilities": {
            "temperature": True,
            "reasoning": False,
            "attachment": image or pdf,
            "toolcall": True,
            "input": {"text": True, "audio": False, "image": image, "video": False, "pdf": pdf},
            "output": {"text": True, "audio": False, "image": False, "video": False, "pdf": False},
            "interleaved": False,
        },
        "cost": {"input": 0, "output": 0, "cache": {"read": 0, "write": 0}},
        "limit": {"context": 32000, "output": 4096},
        "status": "active",
        "options": {},
        "headers": {},
        "release_date": "2026-01-01",
    }


_MODELS: Final = {
    "stub-model": _model("stub-model", "Stub Model", image=False, pdf=False),
    "stub-vision": _model("stub-vision", "Stub Vision", image=True, pdf=True),
}


def provider_list() -> dict[str, Any]:
    """The ``GET /provider`` body: ``{all, default, connected}``."""
    provider = {
        "id": DEFAULT_PROVIDER,
        "name": "Stub LLM",
        "source": "config",
        "env": [],
        "options": {"baseURL": STUB_BASE_URL},
        "models": {key: dict(value) for key, value in _MODELS.items()},
    }
    return {
        "all": [provider],
        "default": {DEFAULT_PROVIDER: DEFAULT_MODEL},
        "connected": [DEFAULT_PROVIDER],
    }


def find_model(provider_id: str, model_id: str) -> dict[str, Any] | None:
    """The catalogue entry of a model, or ``None`` if the server does not know it."""
    if provider_id != DEFAULT_PROVIDER:
        return None
    return _MODELS.get(model_id)
