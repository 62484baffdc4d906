"""The delivery outbox (SPEC §10): events become deliveries, a worker delivers them."""
