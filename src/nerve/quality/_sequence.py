"""Sequence expectations: "purchase_complete is preceded by checkout_start within 1 h
for >= 95% of users"."""

from __future__ import annotations

import ibis

from nerve.quality._config import Sequence
from nerve.quality._context import Context
from nerve.quality._engine import epoch_seconds, event_key, user_key
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_duration, fmt_pct
from nerve.warehouse import one_of, stitch_identities

__all__ = ["check_sequence"]


def check_sequence(ctx: Context, seq: Sequence) -> CheckResult:
    """Share of users whose every ``seq.event`` had a ``seq.preceded_by`` shortly before.

    One pass: the two events' rows per user in time order, with the running latest time
    of the earlier step (a window function, so it runs on every engine). Identities are
    stitched, as the analyses stitch them: a step taken signed out counts for the user
    who then signed in on that device.
    """
    e = stitch_identities(ctx.inputs.events)
    backend = ctx.inputs.backend
    key = event_key(e)
    ts = epoch_seconds(e.timestamp, backend)
    # the earlier step is read from `within` before the window: an event early in the
    # window may have been preceded by one before it (an invoice created on Monday, paid
    # on Thursday, judged over the week from Tuesday)
    start = ctx.now - seq.window
    rows = e.filter(ts >= start - seq.within, ts < ctx.now,
                    ibis.ifelse(ts >= start, one_of(key, [seq.event, seq.preceded_by]),
                                key == seq.preceded_by)).select(
        user=user_key(e), ts=ts, is_target=key == seq.event, is_before=key == seq.preceded_by)
    rows = rows.filter(rows.user.notnull())
    # ties: an earlier step logged in the same microsecond counts as before
    window = ibis.window(group_by=rows.user, order_by=[rows.ts, rows.is_target],
                         preceding=None, following=0)
    rows = rows.mutate(last_before=ibis.ifelse(rows.is_before, rows.ts, None).max().over(window))
    targets = rows.filter(rows.is_target).mutate(
        ok=rows.last_before.notnull() & (rows.ts - rows.last_before <= seq.within))
    per_user = targets.group_by("user").agg(ok=targets.ok.all(), n=targets.count())
    totals = per_user.aggregate(users=per_user.count(), good=ibis.ifelse(per_user.ok, 1, 0).sum(),
                                events=per_user.n.sum()).to_pandas().iloc[0]
    users = int(totals["users"])
    good = int(totals["good"] or 0)
    share = good / users if users else 1.0
    phrase = (f"{seq.event} preceded by {seq.preceded_by} within {fmt_duration(seq.within)}")
    expected = {"min": seq.min_share, "max": 1.0}
    if users < seq.min_users:
        return ctx.result("sequence", Status.passed,
                          f"Too few users ({users}, need {seq.min_users}) with {seq.event} in "
                          f"the last {fmt_duration(seq.window)} to judge '{phrase}'.",
                          event=seq.event, dimensions={"sequence": seq.name},
                          observed=share if users else None, expected=expected, unit="share")
    status = Status.passed if share >= seq.min_share else Status.fail
    text = (f"{fmt_pct(share)} of {fmt_count(users)} users had every {phrase} in the last "
            f"{fmt_duration(seq.window)} (expected at least {fmt_pct(seq.min_share)})")
    if status is not Status.passed:
        text += f"; {fmt_count(users - good)} users have a {seq.event} without it"
    return ctx.result("sequence", status, text + ".", event=seq.event,
                      dimensions={"sequence": seq.name}, observed=share, expected=expected,
                      unit="share", details={"users": users, "users_ok": good})
