"""The first implementation, in Python, kept as a reference beside tests/oracle.py.

- `engine/`: the exact engine as it was before native/engine (per-bucket cells, caps), and
  `events.py`, its event parser;
- `partition.py`, `store.py`, `codec.py`, `payloads.py`: the worker's partition state and its
  Redis layout of the first stored format, which the migration tests use to write state exactly as
  earlier versions did, for the current version to read and migrate.
"""
