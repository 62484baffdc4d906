"""Persistence: the store protocol and its backends."""
