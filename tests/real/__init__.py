"""The bridge end to end against a real ``opencode serve`` driven by the stub model."""
