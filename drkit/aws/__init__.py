"""The aws target's parts: configuration, control-plane operations, safety interlocks."""
