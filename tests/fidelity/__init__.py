"""Fidelity suite: clients we did not write, run against the Mattermost emulator."""
