"""Replay and backfill: rebuild every metric from a topic into a namespace of its own (run),
its exact history at every bucket boundary (history) and its export to Prometheus (export)."""
