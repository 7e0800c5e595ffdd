"""Thin Kafka wiring: client construction from settings and the dead-letter topic."""
