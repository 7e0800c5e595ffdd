"""Structured logs: one JSON object per line, with the `extra` fields of each call."""

from __future__ import annotations

import logging
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class KafkaConnectionChatter(logging.Filter):
    """Drops aiokafka's error line for each failed connection: the worker logs one line of its
    own per attempt while Kafka is away (waiting at start, retrying later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("aiokafka") and str(record.msg).startswith("Unable connect to")
        )


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the worker: JSON lines on stderr for every logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"kafka_chatter": {"()": KafkaConnectionChatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["kafka_chatter"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # faust and aiokafka are chatty at INFO about routine rebalancing.
        "loggers": {
            "faust": {"level": "WARNING"},
            "mode": {"level": "WARNING"},
            "aiokafka": {"level": "WARNING"},
        },
    }
