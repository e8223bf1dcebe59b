"""Conformance suites: the harness checked against real servers and real clients."""
