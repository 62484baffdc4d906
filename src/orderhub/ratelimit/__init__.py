"""Rate limiting (SPEC §5) with the `limits` library: memory or Redis."""
