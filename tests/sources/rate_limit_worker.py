"""One worker process of the cross-process rate-limit test.

Builds a client from the environment (database, base URL, key) exactly as a
function instance would, prints ``ready``, waits for ``go`` on stdin, then
makes ``calls`` calls. Usage: ``python rate_limit_worker.py <provider> <calls>``.
"""

from __future__ import annotations

import sys

from shared.sources.setlistfm import SetlistFmClient
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.stub_server import stamp_send_time


def main() -> None:
    provider, calls = sys.argv[1], int(sys.argv[2])
    tm = TicketmasterClient.from_settings() if provider == "ticketmaster" else None
    setlistfm = SetlistFmClient.from_settings() if provider == "setlistfm" else None
    for client in (tm, setlistfm):
        if client is not None:
            stamp_send_time(client.http.client)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(calls):
        if tm is not None:
            tm.get_venue("KovZpZAEvAJA")
        elif setlistfm is not None:
            setlistfm.get_setlist("4b943b7a")


if __name__ == "__main__":
    main()
