"""One worker process of the cross-process rate-limit test.

Builds a client from the environment (database, base URL, key) exactly as a
function instance would, but with a fake clock whose sleep returns at once:
the test judges the slots the database hands out, not wall-clock timing. It
prints ``ready``, waits for ``go`` on stdin, makes ``calls`` calls, then
prints the time of every slot it reserved (``slot <ISO 8601>``, one a line;
the call log writes its JSON lines to stdout too).
Usage: ``python rate_limit_worker.py <provider> <calls>``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime

from shared.quota import DailyQuota, QuotaShare
from shared.sources.errors import Provider
from shared.sources.http import SourceClient
from shared.sources.ratelimit import DatabaseRateLimiter, Reservation
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.ticketmaster import TicketmasterClient

# Long enough for slots booked an hour ahead by the test.
MAX_SLOT_WAIT_SECONDS = 7200.0


class RecordingLimiter(DatabaseRateLimiter):
    """The production limiter, remembering the slot of every reservation."""

    def __init__(self) -> None:
        self.slots: list[datetime] = []

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
        reservation = super().reserve(
            provider, requests_per_second, max_wait_seconds, share=share, quota=quota,
            count_call=count_call,
        )
        if reservation.slot_at is not None:
            self.slots.append(reservation.slot_at)
        return reservation


class FrozenClock:
    """Time that moves only when the client sleeps; sleeping returns at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def main() -> None:
    provider, calls = sys.argv[1], int(sys.argv[2])
    limiter = RecordingLimiter()
    clock = FrozenClock()
    call: Callable[[], object]
    client: SourceClient
    if provider == "ticketmaster":
        tm = TicketmasterClient.from_settings(
            limiter=limiter, sleep=clock.sleep, max_slot_wait_seconds=MAX_SLOT_WAIT_SECONDS
        )
        client, call = tm, lambda: tm.get_venue("KovZpZAEvAJA")
    else:
        setlistfm = SetlistFmClient.from_settings(
            limiter=limiter, sleep=clock.sleep, max_slot_wait_seconds=MAX_SLOT_WAIT_SECONDS
        )
        client, call = setlistfm, lambda: setlistfm.get_setlist("4b943b7a")
    # The client's own clock decides whether a wake-up came too late: frozen,
    # every call takes exactly one slot.
    client.http.clock = clock.time
    print("ready", flush=True)
    sys.stdin.readline()
    with client:
        for _ in range(calls):
            call()
    for slot in limiter.slots:
        print("slot", slot.isoformat())


if __name__ == "__main__":
    main()
