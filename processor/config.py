"""Settings from the environment (CONTRACT §5); each command-line option overrides its variable.

Secrets are `SecretStr`, so they print as `**********` in logs, reprs and error messages.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from processor.durations import parse_duration_ms


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NSM_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic: str = "product-events"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    definitions: str = "definitions/"
    namespace: str = Field(default="live", pattern=r"^[A-Za-z0-9_.-]+$")
    metrics_port: int = Field(default=6066, ge=0, le=65535)
    clock: Literal["wall", "events"] = "wall"
    max_future_skew: str = "5m"
    # How a Kafka message reads: NSM's own events, or Segment/RudderStack calls (CONTRACT §1).
    input_format: Literal["nsm", "segment"] = "nsm"

    # Kafka security, passed through to the clients unchanged.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    @field_validator("max_future_skew")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @property
    def max_future_skew_ms(self) -> int:
        return parse_duration_ms(self.max_future_skew)

    @property
    def redis_url_for_logs(self) -> str:
        """The Redis URL with any password masked."""
        return mask_url_password(self.redis_url.get_secret_value())

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options in the spelling shared by kafka-python and aiokafka."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            options["sasl_plain_username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        if self.kafka_ssl_certfile:
            options["ssl_certfile"] = self.kafka_ssl_certfile
        if self.kafka_ssl_keyfile:
            options["ssl_keyfile"] = self.kafka_ssl_keyfile
        return options


def mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))
