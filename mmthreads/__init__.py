"""mmthreads: drive many OpenCode sessions from Mattermost, one DM thread per session."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
