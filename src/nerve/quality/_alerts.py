"""Alerts: a Slack-compatible webhook (``{"text": ...}``) for results that need a person."""

from __future__ import annotations

import logging

import httpx

from nerve.quality._result import CheckResult, Status

__all__ = ["alert_text", "send_alert"]

log = logging.getLogger("nerve.quality")

_ICON = {Status.fail: ":red_circle:", Status.warn: ":large_yellow_circle:",
         Status.error: ":warning:", Status.passed: ":white_check_mark:"}


def alert_text(results: list[CheckResult], *, project: str = "nerve", limit: int = 20) -> str:
    """The message body: one line per result, worst first, at most ``limit`` lines."""
    ordered = sorted(results, key=lambda r: -r.status.rank)
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"*{project}: data quality* ({summary})"]
    lines.extend(f"{_ICON[r.status]} [{r.check}] {r.message}" for r in ordered[:limit])
    if len(ordered) > limit:
        lines.append(f"... and {len(ordered) - limit} more (nerve check)")
    return "\n".join(lines)


def send_alert(url: str, results: list[CheckResult], *, project: str = "nerve",
               timeout: float = 10.0) -> bool:
    """POST ``{"text": ...}`` to ``url``; True when it answered 2xx. Never raises."""
    if not results:
        return True
    try:
        response = httpx.post(url, json={"text": alert_text(results, project=project)},
                              timeout=timeout)
    except httpx.HTTPError as exc:
        log.warning("check alert webhook %s failed: %s", url, exc)
        return False
    if response.is_success:
        return True
    log.warning("check alert webhook %s answered HTTP %s", url, response.status_code)
    return False
