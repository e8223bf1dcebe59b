"""The Trio layer: the service, its tasks and what they do in the world."""
