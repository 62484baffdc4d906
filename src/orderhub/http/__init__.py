"""HTTP plumbing: request context, body limit, error handlers."""
