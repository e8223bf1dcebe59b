"""``mmthreads demo``: what the bridge does, shown without Mattermost or an LLM."""

from __future__ import annotations

__all__ = ["run_demo"]


def run_demo() -> int:
    """Run the demo and return the exit code."""
    print("mmthreads demo: not available yet")  # noqa: T201
    return 0
