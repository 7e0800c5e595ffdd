"""A Kafka partition's state in the engine and the step that applies a batch to it and writes it
(shared by the worker and the replay)."""
