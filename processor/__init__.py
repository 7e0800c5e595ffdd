"""NSM: exact rolling-window North Star Metrics from Kafka events, kept in Redis, exported to Prometheus."""

__version__ = "0.1.0"
