"""Structured JSON logs (structlog) on stdout, one object per line.

Cloud logging ingests stdout lines as JSON; ``bind`` carries job id, kind,
entity and attempt onto every line of a job.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
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


def get_logger(name: str, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    configure_logging()
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name, **initial)
    return logger
