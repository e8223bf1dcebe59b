"""The fault-injection harness: a Mattermost emulator, an OpenCode stand-in and a stub model.

It ships with mmthreads because users run it too (the demo, fault drills, testing their own bots).
It imports nothing from the bridge's ``core``, ``adapters`` or ``runtime``: an emulator that
shared code with the client it checks could share its bugs.
"""
