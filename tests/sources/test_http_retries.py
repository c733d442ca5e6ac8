"""Retry, classification, observation and redaction of the shared request machinery.

Driven through the real clients against pytest-httpx; every wait goes through
the fake clock's ``sleep``, so the tests assert the waits without sleeping.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from shared.sources.errors import (
    BadCredentials,
    ClientError,
    Forbidden,
    InvalidPayload,
    NotFound,
    QuotaExhausted,
    RateLimited,
    SourceError,
    UpstreamError,
)
from shared.sources.http import RetryPolicy, Transport, redact
from shared.sources.ratelimit import InMemoryRateLimiter
from shared.sources.setlistfm import SetlistFmClient
from shared.sources.ticketmaster import TicketmasterClient
from tests.sources.conftest import (
    NOW,
    TM_BASE,
    TM_KEY,
    CollectingObserver,
    FakeClock,
    NoWaitLimiter,
    payload,
)

ATTRACTION_URL = re.compile(re.escape(f"{TM_BASE}/attractions/K8vZ9171ob7.json") + r"\?.*")
SETLIST_URL = re.compile(r"https://api\.setlist\.fm/rest/1\.0/setlist/4b943b7a.*")


def quota_body() -> str:
    return (
        '{"fault":{"faultstring":"Rate limit quota violation. Quota limit  exceeded. '
        f'Identifier : {TM_KEY}","detail":{{"errorcode":"policies.ratelimit.QuotaViolation"}}}}}}'
    )


def test_429_waits_for_retry_after_then_succeeds(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, clock: FakeClock, observer: CollectingObserver
) -> None:
    httpx_mock.add_response(
        url=ATTRACTION_URL,
        status_code=429,
        json=payload("tm_429_spike.json"),
        headers={"Retry-After": "3"},
    )
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    attraction = tm.get_attraction("K8vZ9171ob7")

    assert attraction.name == "Band of Horses"
    assert len(httpx_mock.get_requests()) == 2
    assert clock.sleeps == [3.0]
    assert [(c.attempt, c.outcome, c.status_code) for c in observer.calls] == [
        (1, "rate_limited", 429),
        (2, "ok", 200),
    ]


def test_retry_after_as_http_date_is_honoured(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    retry_at = datetime.fromtimestamp(NOW + 7, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=429, headers={"Retry-After": retry_at})
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    tm.get_attraction("K8vZ9171ob7")

    assert clock.sleeps == [7.0]


def test_retry_after_beyond_the_cap_is_not_waited_for(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    httpx_mock.add_response(
        url=ATTRACTION_URL,
        status_code=429,
        json=payload("tm_429_spike.json"),
        headers={"Retry-After": "120"},
    )

    with pytest.raises(RateLimited) as raised:
        tm.get_attraction("K8vZ9171ob7")

    assert raised.value.retry_after == 120.0
    assert len(httpx_mock.get_requests()) == 1
    assert clock.sleeps == []


def test_setlistfm_429_without_retry_after_waits_two_seconds(
    setlistfm: SetlistFmClient, httpx_mock: HTTPXMock, clock: FakeClock
) -> None:
    httpx_mock.add_response(
        url=SETLIST_URL, status_code=429, json={"code": 429, "status": "Too Many Requests"}
    )
    httpx_mock.add_response(url=SETLIST_URL, json=payload("setlistfm_setlist_nested.json"))

    setlistfm.get_setlist("4b943b7a")

    assert len(httpx_mock.get_requests()) == 2
    assert len(clock.sleeps) == 1
    assert 2.0 <= clock.sleeps[0] <= 2.5


def test_5xx_is_retried_with_exponential_backoff_and_jitter(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, clock: FakeClock, observer: CollectingObserver
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=503, text="Service Unavailable")
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=502, text="Bad Gateway")
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    tm.get_attraction("K8vZ9171ob7")

    assert len(httpx_mock.get_requests()) == 3
    first, second = clock.sleeps
    # initial 0.5 s doubling, plus up to 0.5 s of jitter
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 1.5
    assert [c.outcome for c in observer.calls] == ["server_error", "server_error", "ok"]


def test_attempts_are_bounded(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, clock: FakeClock, observer: CollectingObserver
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=500, is_reusable=True)

    with pytest.raises(UpstreamError) as raised:
        tm.get_attraction("K8vZ9171ob7")

    assert raised.value.status_code == 500
    assert len(httpx_mock.get_requests()) == 4
    assert len(clock.sleeps) == 3
    assert [c.attempt for c in observer.calls] == [1, 2, 3, 4]


def test_total_waiting_time_is_bounded(
    clock: FakeClock, observer: CollectingObserver, httpx_mock: HTTPXMock
) -> None:
    client = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=NoWaitLimiter(),
            observer=observer,
            sleep=clock.sleep,
            clock=clock.time,
            retry=RetryPolicy(max_attempts=10, max_total_wait_seconds=5.0),
        ),
    )
    httpx_mock.add_response(
        url=ATTRACTION_URL, status_code=429, headers={"Retry-After": "2"}, is_reusable=True
    )

    with client, pytest.raises(RateLimited):
        client.get_attraction("K8vZ9171ob7")

    # 2 s + 2 s fit in 5 s; a third wait would make 6 s.
    assert clock.sleeps == [2.0, 2.0]
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=lambda e: type(e).__name__,
)
def test_timeouts_and_connection_errors_are_retried(
    tm: TicketmasterClient,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    observer: CollectingObserver,
    exception: httpx.TransportError,
) -> None:
    httpx_mock.add_exception(exception, url=ATTRACTION_URL)
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    tm.get_attraction("K8vZ9171ob7")

    assert len(httpx_mock.get_requests()) == 2
    assert len(clock.sleeps) == 1
    assert observer.calls[0].outcome == "network_error"
    assert observer.calls[0].status_code is None


def test_network_errors_give_up_as_upstream_error(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=ATTRACTION_URL, is_reusable=True)

    with pytest.raises(UpstreamError, match="ReadTimeout"):
        tm.get_attraction("K8vZ9171ob7")

    assert len(httpx_mock.get_requests()) == 4


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"errors": [{"code": "DIS1015", "detail": "Invalid startDateTime"}]}, ClientError),
        (401, payload("tm_401.json"), BadCredentials),
        (403, {"fault": {"faultstring": "Forbidden"}}, Forbidden),
        (404, payload("tm_404.json"), NotFound),
        (422, {"errors": []}, ClientError),
    ],
)
def test_other_4xx_are_never_retried(
    tm: TicketmasterClient,
    httpx_mock: HTTPXMock,
    clock: FakeClock,
    status: int,
    body: Any,
    error: type[SourceError],
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=status, json=body)

    with pytest.raises(error) as raised:
        tm.get_attraction("K8vZ9171ob7")

    assert raised.value.status_code == status
    assert len(httpx_mock.get_requests()) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"attraction","url":"https://www.ticketmaster.com/x"}',  # no id, no name
        b'{"name":"Band of Horses","id":""}',  # empty id
        b"<html>Gateway</html>",  # not JSON
    ],
)
def test_invalid_payload_is_a_typed_error_not_retried(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, observer: CollectingObserver, body: Any
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, content=body)

    with pytest.raises(InvalidPayload):
        tm.get_attraction("K8vZ9171ob7")

    assert len(httpx_mock.get_requests()) == 1
    assert observer.calls[0].outcome == "invalid_payload"


def test_observation_uses_the_endpoint_template_not_the_url(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))

    tm.get_attraction("K8vZ9171ob7")

    (call,) = observer.calls
    assert call.provider == "ticketmaster"
    assert call.endpoint == "/attractions/{id}.json"
    assert call.method == "GET"
    assert call.status_code == 200
    assert call.attempt == 1
    assert call.outcome == "ok"
    assert call.latency_ms >= 0
    assert call.error is None


def test_path_parameters_cannot_escape_the_endpoint(
    tm: TicketmasterClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json=payload("tm_attraction.json"))

    tm.get_attraction("../events/x?apikey=stolen")

    url = httpx_mock.get_requests()[0].url
    assert url.raw_path.startswith(
        b"/discovery/v2/attractions/..%2Fevents%2Fx%3Fapikey%3Dstolen.json?"
    )
    assert url.params.get_list("apikey") == [TM_KEY]


def test_quota_exhausted_stops_every_later_call_until_the_reset(
    httpx_mock: HTTPXMock, clock: FakeClock, observer: CollectingObserver
) -> None:
    limiter = InMemoryRateLimiter(clock=clock.time)
    client = TicketmasterClient(
        api_key=SecretStr(TM_KEY),
        transport=Transport(
            base_url=TM_BASE,
            requests_per_second=5,
            timeout_seconds=10,
            limiter=limiter,
            observer=observer,
            sleep=clock.sleep,
            clock=clock.time,
        ),
    )
    reset_ms = int((NOW + 3600) * 1000)
    httpx_mock.add_response(
        url=ATTRACTION_URL,
        status_code=429,
        text=quota_body(),
        headers={
            "Rate-Limit": "5000",
            "Rate-Limit-Available": "0",
            "Rate-Limit-Over": "12",
            "Rate-Limit-Reset": str(reset_ms),
        },
    )

    with client:
        with pytest.raises(QuotaExhausted) as raised:
            client.get_attraction("K8vZ9171ob7")
        assert raised.value.reset_at == datetime.fromtimestamp(reset_ms / 1000, UTC)
        assert len(httpx_mock.get_requests()) == 1  # not retried

        # Before the reset: refused without a request.
        clock.now = NOW + 1800
        with pytest.raises(QuotaExhausted):
            client.get_attraction("K8vZ9171ob7")
        assert len(httpx_mock.get_requests()) == 1

        # After the reset: calls go out again.
        clock.now = NOW + 3601
        httpx_mock.add_response(url=ATTRACTION_URL, json=payload("tm_attraction.json"))
        assert client.get_attraction("K8vZ9171ob7").id == "K8vZ9171ob7"
    assert observer.calls[0].outcome == "quota_exhausted"


def test_quota_without_reset_header_pauses_for_the_default_time(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, limiter: NoWaitLimiter
) -> None:
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=429, text=quota_body())

    with pytest.raises(QuotaExhausted) as raised:
        tm.get_attraction("K8vZ9171ob7")

    expected = datetime.fromtimestamp(NOW + 3600, UTC)
    assert raised.value.reset_at == expected
    assert limiter.paused["ticketmaster"] == expected


def test_ticketmaster_key_never_leaves_the_client(
    tm: TicketmasterClient,
    httpx_mock: HTTPXMock,
    observer: CollectingObserver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=429, text=quota_body())

    with pytest.raises(QuotaExhausted) as raised:
        tm.get_attraction("K8vZ9171ob7")

    assert "Identifier : [REDACTED]" in str(raised.value)
    assert TM_KEY not in str(raised.value)
    assert TM_KEY not in repr(raised.value.args)
    (call,) = observer.calls
    assert call.error is not None and "[REDACTED]" in call.error
    assert TM_KEY not in repr(call)
    # httpx logs request URLs (with the apikey) at INFO: that logger is kept quiet.
    assert TM_KEY not in caplog.text


def test_a_key_across_the_cut_of_a_long_error_body_is_not_left_half_visible(
    tm: TicketmasterClient, httpx_mock: HTTPXMock, observer: CollectingObserver
) -> None:
    # The key starts a few characters before the 500th: cutting before
    # redacting would leave its first characters in the message.
    httpx_mock.add_response(url=ATTRACTION_URL, status_code=400, text="x" * 490 + TM_KEY)

    with pytest.raises(ClientError) as raised:
        tm.get_attraction("K8vZ9171ob7")

    (call,) = observer.calls
    for reported in (str(raised.value), call.error or ""):
        assert TM_KEY[:10] not in reported


def test_escaped_forms_of_a_secret_are_redacted() -> None:
    secret = 'tok\nen"42'
    text = f"Illegal header value {('Bearer ' + secret).encode()!r}"

    assert redact(text, [secret]) == "Illegal header value b'Bearer [REDACTED]'"
