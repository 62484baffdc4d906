"""Authentication: API keys (environment or stored, hashed) and JWT bearer tokens."""
