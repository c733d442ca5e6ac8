"""Job kinds and their handlers.

A message on the ``sync`` queue is ``{"kind", "entity_id", "options"}`` (see
``private.enqueue_sync_job``). Each kind's handler lives with the code it
drives and registers itself here; the worker looks handlers up by kind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JobOutcome = Mapping[str, Any] | None


@dataclass(frozen=True)
class Job:
    msg_id: int
    kind: str
    entity_id: uuid.UUID
    attempt: int
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def force(self) -> bool:
        return bool(self.options.get("force", False))


JobHandler = Callable[[Job], JobOutcome]

_handlers: dict[str, JobHandler] = {}


class UnknownJobKind(LookupError):
    pass


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    """Register the decorated function as the handler of ``kind`` jobs."""

    def register(handler: JobHandler) -> JobHandler:
        if kind in _handlers and _handlers[kind] is not handler:
            raise ValueError(f"a handler for {kind!r} jobs is already registered")
        _handlers[kind] = handler
        return handler

    return register


def handler_for(kind: str) -> JobHandler:
    try:
        return _handlers[kind]
    except KeyError:
        raise UnknownJobKind(kind) from None
