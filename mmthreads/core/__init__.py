"""The sans-IO core: state machines, routing, rendering and commands.

Nothing in this package performs I/O, reads the clock or imports trio, trio_websocket or
httpx; ``tests/test_layering.py`` enforces that. Time enters as explicit arguments.
"""
