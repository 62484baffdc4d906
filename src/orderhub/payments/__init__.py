"""Payments: the provider protocol and its implementations."""
