"""Adapters at the edge: AWS (Redshift, SQS, the rate limit), the state store, and HTTP
(health and metrics)."""
