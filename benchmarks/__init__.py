"""`make bench`: throughput and memory figures, each against a baseline measured in the same run."""
