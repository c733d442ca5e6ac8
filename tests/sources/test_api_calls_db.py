"""The default call observer against the real schema: api_calls rows and JSON log lines."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.sources.calllog import ApiCallLog
from shared.sources.errors import ClientError, QuotaExhausted
from shared.sources.http import Transport
from shared.sources.spotify import SpotifyClient
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.conftest import (
    SPOTIFY_ACCOUNTS,
    SPOTIFY_API,
    SPOTIFY_SECRET,
    TM_BASE,
    TM_KEY,
    FakeClock,
    NoWaitLimiter,
    payload,
)
from tests.support.db import Connection

ATTRACTION_URL = re.compile(re.escape(f"{TM_BASE}/attractions/K8vZ9171ob7.json") + r"\?.*")


def client(clock: FakeClock) -> TicketmasterClient:
    return TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=NoWaitLimiter(),
            observer=ApiCallLog(),
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )


def log_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_every_attempt_is_a_row_and_a_json_log_line(
    database_url: str,
    db: Connection,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=503, text="upstream connect error")
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    with client(clock) as tm:
        tm.get_attraction("K8vZ9171ob7")

    rows = db.execute(
        "select provider, endpoint, method, status_code, attempt, outcome, error, latency_ms"
        " from private.api_calls order by id"
    ).fetchall()
    assert [
        {k: r[k] for k in ("provider", "endpoint", "method", "status_code", "attempt", "outcome")}
        for r in rows
    ] == [
        {
            "provider": "ticketmaster",
            "endpoint": "/attractions/{id}.json",
            "method": "GET",
            "status_code": 503,
            "attempt": 1,
            "outcome": "server_error",
        },
        {
            "provider": "ticketmaster",
            "endpoint": "/attractions/{id}.json",
            "method": "GET",
            "status_code": 200,
            "attempt": 2,
            "outcome": "ok",
        },
    ]
    assert "upstream connect error" in rows[0]["error"]
    assert rows[1]["error"] is None
    lines = [
        line for line in log_lines(capfd.readouterr().out) if line.get("event") == "source_call"
    ]
    assert [(line["outcome"], line["attempt"], line["level"]) for line in lines] == [
        ("server_error", 1, "warning"),
        ("ok", 2, "info"),
    ]
    assert all(line["endpoint"] == "/attractions/{id}.json" for line in lines)


def test_the_ticketmaster_key_is_absent_from_rows_and_logs_after_a_quota_429(
    database_url: str,
    db: Connection,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    httpx_mock.add_response(
        url=ATTRACTION_URL,
        status_code=429,
        json={
            "fault": {
                "faultstring": "Rate limit quota violation. Quota limit  exceeded. "
                f"Identifier : {TM_KEY}",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
            }
        },
    )

    with client(clock) as tm, pytest.raises(QuotaExhausted) as raised:
        tm.get_attraction("K8vZ9171ob7")

    output = capfd.readouterr()
    (row,) = db.execute("select * from private.api_calls").fetchall()
    assert row["outcome"] == "quota_exhausted"
    assert "Identifier : [REDACTED]" in row["error"]
    everything = json.dumps(row, default=str) + output.out + output.err + str(raised.value)
    assert TM_KEY not in everything


def test_a_failing_call_log_does_not_fail_the_call(
    database_url: str,
    db: Connection,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    db.execute("alter table private.api_calls rename to api_calls_gone")
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    with client(clock) as tm:
        assert tm.get_attraction("K8vZ9171ob7").name == "Band of Horses"

    events = [line["event"] for line in log_lines(capfd.readouterr().out)]
    assert "api_call_log_failed" in events


def test_spotify_tokens_are_absent_from_rows_and_logs(
    database_url: str,
    db: Connection,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app_token = "BQAppAccessToken0123456789abcdefXYZ"
    user_token = "BQUserProviderToken0123456789abcdefXYZ"
    httpx_mock.add_response(
        method="POST",
        url=f"{SPOTIFY_ACCOUNTS}/api/token",
        json={"access_token": app_token, "token_type": "Bearer", "expires_in": 3600},
    )
    for path, token in (
        ("/artists/0OdUWJ0sBjDrqHygGUXeCF", app_token),
        ("/me/following", user_token),
    ):
        httpx_mock.add_response(
            url=re.compile(re.escape(f"{SPOTIFY_API}{path}") + r"(\?.*)?$"),
            status_code=400,
            json={"error": {"status": 400, "message": f"bad request with Bearer {token}"}},
        )
    spotify = SpotifyClient(
        client_id="theset-client-id",
        client_secret=SecretStr(SPOTIFY_SECRET),
        accounts_base_url=SPOTIFY_ACCOUNTS,
        transport=Transport(
            base_url=SPOTIFY_API,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=NoWaitLimiter(),
            observer=ApiCallLog(),
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )

    with spotify:
        with pytest.raises(ClientError) as app_error:
            spotify.get_artist("0OdUWJ0sBjDrqHygGUXeCF")
        with pytest.raises(ClientError) as user_error:
            spotify.me_followed_artists(SecretStr(user_token))

    output = capfd.readouterr()
    rows = db.execute("select * from private.api_calls where outcome = 'client_error'").fetchall()
    assert [row["endpoint"] for row in rows] == ["/artists/{id}", "/me/following"]
    assert all("Bearer [REDACTED]" in row["error"] for row in rows)
    everything = (
        json.dumps(rows, default=str)
        + output.out
        + output.err
        + str(app_error.value)
        + str(user_error.value)
    )
    assert app_token not in everything
    assert user_token not in everything
