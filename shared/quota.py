"""Whose quota a source call spends: the share, and the caller's budget.

Every call to a source is counted in its provider's daily quota, in one of
two shares (``private.source_daily_quotas``): ``request`` for a function
answering a client, ``sync`` for the queue worker and internal callers. The
request share stops at the quota less the sync's reserve, so a day of heavy
search cannot stop the schedules.

Who spends is decided by the caller, not by the client objects (one per
process, shared by every request): ``spending(...)`` sets it for the current
context. A request also brings its client's budget check, run once, just
before the request's first upstream call: a request answered from the
database never spends budget, and an over-budget request never reaches a
source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

QuotaShare = Literal["request", "sync"]


@dataclass(frozen=True, slots=True)
class DailyQuota:
    """A provider's calls a day, and how many of them request traffic may never use."""

    daily_limit: int
    sync_reserved: int = 0

    def __post_init__(self) -> None:
        if self.daily_limit <= 0:
            raise ValueError("a daily quota must be positive")
        if not 0 <= self.sync_reserved <= self.daily_limit:
            raise ValueError("the sync's reserve must lie between 0 and the daily quota")


@dataclass(slots=True)
class Spender:
    share: QuotaShare
    # Runs once, before the first upstream call made for this spender; raises to refuse.
    before_first_call: Callable[[], None] | None = None
    charged: bool = False


_spender: ContextVar[Spender | None] = ContextVar("theset_source_spender", default=None)
# Outside any ``spending`` block calls are request traffic's (unguarded): only
# code that declares itself the sync (the worker, internal callers) may use the
# reserve, so a path that forgets to say who it is cannot eat into it.
_UNDECLARED = Spender("request")


@contextmanager
def spending(
    share: QuotaShare, before_first_call: Callable[[], None] | None = None
) -> Iterator[Spender]:
    """Calls made inside the block spend ``share``; ``before_first_call`` guards the first."""
    spender = Spender(share, before_first_call)
    token = _spender.set(spender)
    try:
        yield spender
    finally:
        _spender.reset(token)


def current_share() -> QuotaShare:
    return (_spender.get() or _UNDECLARED).share


def before_upstream_call() -> None:
    """Run the current spender's guard once (the source clients call this before sending)."""
    spender = _spender.get()
    if spender is None or spender.charged or spender.before_first_call is None:
        return
    spender.before_first_call()
    spender.charged = True
