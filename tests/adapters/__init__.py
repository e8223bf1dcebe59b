"""Tests of the adapters: Mattermost REST and WebSocket, OpenCode."""
