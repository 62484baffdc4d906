"""The Idempotency-Key mechanism every POST (and DELETE of an order) runs through."""
