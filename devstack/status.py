"""The sync engine's health as tables, for ``./dev status`` (rich is a dev dependency)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def render(status: dict[str, Any], console: Console | None = None) -> None:
    # Wide enough for every column when stdout is not a terminal (CI, logs).
    console = console or Console(width=max(Console().width, 120))
    queue = status.get("queue", {})
    jobs = Table(title=f"sync queue — {queue.get('depth', 0)} message(s)")
    for column in (
        "kind",
        "depth",
        "visible",
        "in flight",
        "delayed",
        "oldest (s)",
        "done 1h",
        "failed 1h",
        "avg ms",
        "dead letters",
    ):
        jobs.add_column(column, justify="left" if column == "kind" else "right")
    for job in status.get("jobs", []):
        jobs.add_row(
            job["kind"],
            _cell(job["depth"]),
            _cell(job["visible"]),
            _cell(job["in_flight"]),
            _cell(job["delayed"]),
            _cell(job["oldest_age_seconds"]),
            _cell(job["done_last_hour"]),
            _cell(job["failed_last_hour"]),
            _cell(job["avg_duration_ms"]),
            _cell(job["dead_letters"]),
        )
    providers = Table(title="source APIs — last hour")
    for column in ("provider", "calls", "errors", "error rate", "avg ms", "p95 ms"):
        providers.add_column(column, justify="left" if column == "provider" else "right")
    for provider in status.get("providers", []):
        providers.add_row(
            provider["provider"],
            _cell(provider["calls_last_hour"]),
            _cell(provider["errors_last_hour"]),
            f"{float(provider['error_rate']):.1%}",
            _cell(provider["avg_latency_ms"]),
            _cell(provider["p95_latency_ms"]),
        )
    quotas = Table(title="daily quotas — today (UTC)")
    for column in ("provider", "limit", "requests", "request share", "sync", "sync reserve",
                   "remaining", "resets at", "paused until"):
        quotas.add_column(column, justify="left" if column == "provider" else "right")
    for quota in status.get("quotas", []):
        quotas.add_row(
            quota["provider"],
            _cell(quota["daily_limit"]),
            _cell(quota["request_calls"]),
            _cell(quota["request_limit"]),
            _cell(quota["sync_calls"]),
            _cell(quota["sync_reserved"]),
            _cell(quota["remaining"]),
            _cell(quota["resets_at"]),
            _cell(quota["paused_until"]),
        )
    console.print(jobs)
    console.print(providers)
    console.print(quotas)
