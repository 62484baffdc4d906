"""Monitoring: what operators see (errors now; health, metrics and probes later)."""
