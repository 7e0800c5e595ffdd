"""The collector's settings: the shared ones (Kafka, topic, skew) and its own `NSM_COLLECT_*`.

Write keys are secrets: `SecretStr` prints as `**********` in reprs, logs and errors.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from processor.config import Settings
from processor.durations import parse_duration_ms

# The limits of Segment's HTTP Tracking API: 32 KB per call, 500 KB per batch request.
DEFAULT_MAX_CALL_BYTES = 32 * 1024
DEFAULT_MAX_REQUEST_BYTES = 500 * 1024


class CollectSettings(Settings):
    collect_host: str = "0.0.0.0"
    collect_port: int = Field(default=8088, ge=0, le=65535)
    # Comma-separated: several sources (apps, environments) may each have their own key.
    collect_write_keys: SecretStr = SecretStr("")
    # The field whose value keys a call's message, so that an account's calls share a partition;
    # empty: the account (`groupId`, else `context.groupId`, processor/segment.py).
    collect_key_field: str = ""
    collect_max_call_bytes: int = Field(default=DEFAULT_MAX_CALL_BYTES, ge=1)
    collect_max_request_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BYTES, ge=1)
    # Calls handed to Kafka and not yet acknowledged, over all requests: past this the collector
    # answers 503 instead of holding more.
    collect_max_pending: int = Field(default=100_000, ge=1)
    # How long a request waits for Kafka's acknowledgement before it answers 503.
    collect_ack_timeout: str = "10s"

    @field_validator("collect_ack_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @property
    def ack_timeout_s(self) -> float:
        return parse_duration_ms(self.collect_ack_timeout) / 1000

    def write_keys(self) -> tuple[bytes, ...]:
        """The accepted write keys (empty when none is set)."""
        keys = self.collect_write_keys.get_secret_value().split(",")
        return tuple(key.strip().encode() for key in keys if key.strip())
