"""End-to-end tests: the real service against the harness servers over 127.0.0.1."""
