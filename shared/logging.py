"""Structured JSON logs (structlog) on stdout, one object per line.

Cloud logging ingests stdout lines as JSON; ``bind`` carries job id, kind,
entity and attempt onto every line of a job.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

# Bind this (a ``time.monotonic()`` reading) to give every line of a unit of
# work its elapsed ``duration_ms``.
STARTED_AT = "started_monotonic"

_configured = False


def configure_logging(level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _elapsed_duration,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    _configured = True


def _elapsed_duration(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    started = event.pop(STARTED_AT, None)
    if isinstance(started, float):
        event.setdefault("duration_ms", round((time.monotonic() - started) * 1000))
    return event


def get_logger(name: str, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    configure_logging()
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name, **initial)
    return logger
