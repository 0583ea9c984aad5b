"""Webhooks: creators' endpoints that hear stream events, signed deliveries."""
