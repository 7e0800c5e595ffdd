"""The collector's settings: write keys are secrets, Kafka options pass through to librdkafka."""

from __future__ import annotations

import base64

import pytest

from processor.collect.app import Collector
from processor.collect.producer import librdkafka_config
from processor.collect.settings import CollectSettings


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_write_keys_are_secret_and_split() -> None:
    settings = CollectSettings(collect_write_keys=" web-key , backend-key ,")  # type: ignore[arg-type]
    assert settings.write_keys() == (b"web-key", b"backend-key")
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "web-key" not in shown and "backend-key" not in shown


def test_only_a_configured_key_is_authorized() -> None:
    collector = Collector(CollectSettings(collect_write_keys="k1,k2"))  # type: ignore[arg-type]
    assert collector._authorized(basic("k1")) and collector._authorized(basic("k2"))
    for header in (None, "", basic("k3"), basic("k1x"), basic("k"), "Bearer k1", "Basic !!"):
        assert not collector._authorized(header), header


def test_a_collector_needs_a_write_key() -> None:
    with pytest.raises(ValueError, match="NSM_COLLECT_WRITE_KEYS"):
        Collector(CollectSettings(collect_write_keys=""))  # type: ignore[arg-type]


def test_kafka_security_reaches_librdkafka() -> None:
    settings = CollectSettings(
        kafka_bootstrap="k:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="/ca.pem",
    )  # type: ignore[arg-type]  # fmt: skip
    assert librdkafka_config(settings) == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": "/ca.pem",
    }
