"""The offline planner on a music-streaming app, whose events say "track" as a noun
(track_played, track_skipped): the word must not turn a question into a catalog one."""

from __future__ import annotations

from datetime import date

import pytest

from nerve.agent import Plan, Vocabulary, plan_question
from nerve.agent._plan import MetricInfo

TODAY = date(2026, 11, 30)  # a Monday

MUSIC = Vocabulary(
    metrics=(
        MetricInfo("plays", "Plays", "Tracks played for 30 seconds.", ("streams",),
                   counts="events", over="track_played", events=("track_played",)),
        MetricInfo("listeners", "Listeners", "Distinct listeners who played a track.",
                   counts="people", over="track_played", events=("track_played",)),
        MetricInfo("listening_ms", "Listening time (ms)", "Milliseconds played.",
                   ("listening time",)),
        MetricInfo("skips", "Skips", "Tracks skipped before they ended.",
                   counts="events", over="track_skipped", events=("track_skipped",)),
        MetricInfo("new_subscribers", "New subscribers", "Subscriptions started."),
    ),
    dimensions={"platform": ("ios, android or web", ("android", "ios", "web")),
                "country": ("country", ("BR", "DE", "US"))},
    events=("track_played", "track_skipped", "playback_error", "subscription_started"),
)


def plan(question: str) -> Plan:
    return plan_question(question, MUSIC, TODAY)


@pytest.mark.parametrize("question", [
    "funnel from track_played to subscription_started",
    "funnel from track_played to track_skipped to subscription_started",
    "track played -> subscription started",
])
def test_a_funnel_of_track_events_is_a_funnel(question: str) -> None:
    # was: any "track" in the question made it a catalog question, so these funnels got
    # the description of track_played
    p = plan(question)
    assert p.intent == "funnel", p.as_dict()
    assert p.steps[0] == "track_played"
    assert p.steps[-1] == "subscription_started"


def test_how_many_tracks_were_skipped_counts_them() -> None:
    # was: the description of track_skipped, with no number
    p = plan("how many tracks were skipped last week?")
    assert (p.intent, p.metric) == ("value", "skips"), p.as_dict()


def test_how_many_users_played_tracks_counts_the_listeners() -> None:
    # was: the description of track_played, with no number
    p = plan("how many users played tracks last week?")
    assert (p.intent, p.metric) == ("value", "listeners"), p.as_dict()


@pytest.mark.parametrize(("question", "event"), [
    ("what does track_skipped track?", "track_skipped"),
    ("which properties does track_played track", "track_played"),
    ("what does playback_error mean?", "playback_error"),
])
def test_track_and_mean_as_verbs_are_still_catalog_questions(question: str,
                                                             event: str) -> None:
    p = plan(question)
    assert (p.intent, p.event) == ("catalog", event), p.as_dict()


@pytest.mark.parametrize("question", [
    "average listening time", "mean listening time last week",
    "median listening time on ios"])
def test_an_average_no_metric_defines_is_declined(question: str) -> None:
    # was: "average listening time" answered the total, and "mean ..." the definition
    p = plan(question)
    assert p.intent == "unknown", p.as_dict()
    assert "listening_ms" in p.suggestions
    assert "no metric defines" in p.problems[0]


def test_fewest_ranks_from_the_bottom() -> None:
    # was: "fewest" was not read, so the question was answered with the total plays,
    # the "which country" silently dropped
    p = plan("which country had the fewest plays last week")
    assert (p.intent, p.metric, p.by, p.direction, p.limit) == (
        "top", "plays", "country", "asc", 1), p.as_dict()
