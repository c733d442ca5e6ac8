"""Request-rate limits shared by every process of a deployment.

A limiter hands out *slots*: before each HTTP attempt the client reserves the
next free slot for its provider and sleeps until it. Slots are spaced
``1 / requests_per_second`` apart ("next free time", the GCRA without burst),
so the sources never see more than the configured rate whatever the number of
workers and function instances.

The production limiter keeps the slot clock in Postgres
(``private.reserve_rate_slot``): Supabase is the one thing every function
instance and worker shares, and a row lock makes the reservation atomic. The
same row remembers a daily-quota pause (``private.pause_rate_limited_source``),
so once Ticketmaster says the quota is gone, no process calls it again before
the reset.

Each reservation also counts the call in the provider's daily quota, in the
share of whoever makes it (``shared.quota``): a share that is used up
reserves nothing and says when it resets.

A reservation may be bounded (``max_wait_seconds``): when the next free slot
is further away than that, nothing is reserved and the caller learns the
wait instead, so a burst of requests cannot book slots minutes ahead that
requests which gave up in the meantime would waste.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from shared import db
from shared.quota import DailyQuota, QuotaShare
from shared.sources.errors import Provider


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of a slot reservation.

    ``wait_seconds`` is how long to sleep before sending. When ``paused_until``
    is set no slot was reserved and no call may be made before that time. When
    ``reserved`` is false without a pause, the next free slot was more than
    the maximum wait away: nothing was reserved, and ``wait_seconds`` says how
    far away it was. ``slot_at`` is the reserved slot's time (limiters that
    know it). When ``quota_reset_at`` is set the caller's share of the daily
    quota is used up until then: nothing was reserved.
    """

    wait_seconds: float
    paused_until: datetime | None = None
    reserved: bool = True
    slot_at: datetime | None = None
    quota_reset_at: datetime | None = None


class RateLimiter(Protocol):
    def reserve(
        self,
        provider: Provider,
        requests_per_second: float,
        max_wait_seconds: float | None = None,
        *,
        share: QuotaShare = "sync",
        quota: DailyQuota | None = None,
        count_call: bool = True,
    ) -> Reservation:
        """Reserve the provider's next request slot, unless it is over ``max_wait_seconds`` away
        or ``share`` of the daily ``quota`` is used up. ``count_call`` false: a new slot for a
        call already counted (it neither counts nor is refused by the quota)."""
        ...

    def pause_until(self, provider: Provider, until: datetime) -> None:
        """Stop every call to ``provider`` until ``until`` (daily quota exhausted)."""
        ...


class DatabaseRateLimiter:
    """Limiter shared by every process connected to the same database (the default)."""

    def reserve(
        self,
        provider: Provider,
        requests_per_second: float,
        max_wait_seconds: float | None = None,
        *,
        share: QuotaShare = "sync",
        quota: DailyQuota | None = None,
        count_call: bool = True,
    ) -> Reservation:
        with db.transaction() as conn:
            row = conn.execute(
                "select wait_seconds, paused_until, reserved, slot_at, quota_reset_at"
                " from private.reserve_rate_slot(%s, %s, %s, %s, %s, %s, %s)",
                [
                    provider,
                    requests_per_second,
                    max_wait_seconds,
                    share,
                    quota.daily_limit if quota else None,
                    quota.sync_reserved if quota else 0,
                    count_call,
                ],
            ).fetchone()
        if row is None:  # the function always returns one row
            raise RuntimeError("reserve_rate_slot returned no row")
        return Reservation(
            wait_seconds=float(row["wait_seconds"]),
            paused_until=row["paused_until"],
            reserved=bool(row["reserved"]),
            slot_at=row["slot_at"],
            quota_reset_at=row["quota_reset_at"],
        )

    def pause_until(self, provider: Provider, until: datetime) -> None:
        with db.transaction() as conn:
            conn.execute("select private.pause_rate_limited_source(%s, %s)", [provider, until])


class InMemoryRateLimiter:
    """The same slot arithmetic within one process (unit tests, scripts without a database)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot: dict[Provider, float] = {}
        self._paused_until: dict[Provider, datetime] = {}
        # (provider, UTC day) → calls per share.
        self._calls: dict[tuple[Provider, date], dict[QuotaShare, int]] = {}

    def reserve(
        self,
        provider: Provider,
        requests_per_second: float,
        max_wait_seconds: float | None = None,
        *,
        share: QuotaShare = "sync",
        quota: DailyQuota | None = None,
        count_call: bool = True,
    ) -> Reservation:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if max_wait_seconds is not None and max_wait_seconds < 0:
            raise ValueError("max_wait_seconds must not be negative")
        with self._lock:
            now = self._clock()
            paused_until = self._paused_until.get(provider)
            if paused_until is not None and paused_until.timestamp() > now:
                return Reservation(wait_seconds=0.0, paused_until=paused_until, reserved=False)
            today = datetime.fromtimestamp(now, UTC).date()
            calls = self._calls.setdefault((provider, today), {"request": 0, "sync": 0})
            if quota is not None and count_call and (
                calls["request"] + calls["sync"] >= quota.daily_limit
                or (share == "request"
                    and calls["request"] >= quota.daily_limit - quota.sync_reserved)
            ):
                reset = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
                return Reservation(wait_seconds=0.0, reserved=False, quota_reset_at=reset)
            slot = max(self._next_slot.get(provider, now), now)
            if max_wait_seconds is not None and slot - now > max_wait_seconds:
                return Reservation(wait_seconds=slot - now, reserved=False)
            self._next_slot[provider] = slot + 1.0 / requests_per_second
            calls[share] += count_call
            return Reservation(wait_seconds=slot - now, slot_at=datetime.fromtimestamp(slot, UTC))

    def pause_until(self, provider: Provider, until: datetime) -> None:
        with self._lock:
            current = self._paused_until.get(provider)
            if current is None or until > current:
                self._paused_until[provider] = until.astimezone(UTC)
