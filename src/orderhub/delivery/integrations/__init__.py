"""Per-integration senders behind small protocols: email, sheets, notifications."""
