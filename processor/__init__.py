"""NSM: exact rolling-window North Star Metrics from Kafka events, in Redis, for Prometheus."""

__version__ = "0.1.0"
