"""Structured JSON logs (structlog), one line per event, never bodies or secrets.

Configuration is global in structlog; it is set once by `gateway serve` and can be reset
with `structlog.reset_defaults()`.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson
import structlog

from gateway.records import timestamp

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info") -> None:
    """JSON lines on standard output: timestamp, level, event and fields."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _add_timestamp,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(file=sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


def _add_timestamp(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    # The records' own formatter: it formats the date once a second, not once a line.
    event["timestamp"] = timestamp(time.time())
    return event


def get_logger() -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("gateway")
    return logger
