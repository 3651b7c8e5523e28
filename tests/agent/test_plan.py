"""The offline planner and the honesty rule, as pure functions (no warehouse)."""

from __future__ import annotations

from datetime import date

import pytest

import nerve.agent
from nerve.agent import Plan, Span, Vocabulary, numerals, plan_question, unsupported
from nerve.agent._answer import Builder, DishonestAnswerError
from nerve.agent._plan import MetricInfo
from nerve.agent._time import find_comparison, find_span

TODAY = date(2026, 11, 28)  # a Saturday

VOCAB = Vocabulary(
    metrics=(
        MetricInfo("revenue", "Revenue", "Amount paid for completed orders.",
                   ("sales", "gmv")),
        MetricInfo("orders", "Orders", "Completed, paid orders.", ("purchases",)),
        MetricInfo("average_order_value", "Average order value", "Revenue per order.",
                   ("aov",)),
        MetricInfo("active_users", "Active users", "Distinct shoppers.", ("users",)),
    ),
    dimensions={"platform": ("ios, android or web", ("android", "ios", "web")),
                "country": ("country", ("DE", "US", "GB")),
                "age": ("age in years", ()),
                "age_group": ("bracket", ("18-24", "65+"))},
    segments={"seniors": "65 and over", "plus_members": "plus plan"},
    events=("add_to_cart", "product_view", "purchase_complete"),
    experiments={"simple_checkout": "Simple one-page checkout"},
)


def test_exported_names() -> None:
    assert set(nerve.agent.__all__) == {
        "INTENTS", "TOOLS", "Answer", "Context", "DishonestAnswerError", "LLMConfig",
        "Number", "Plan", "Span", "Tool", "Vocabulary", "ask", "ask_local", "llm_answer",
        "numerals", "plan_for", "plan_question", "run_tool", "tool_local", "unsupported",
        "vocabulary"}


@pytest.mark.parametrize(("text", "since", "until"), [
    ("revenue yesterday", date(2026, 11, 27), date(2026, 11, 27)),
    ("revenue today", TODAY, TODAY),
    ("orders last week", date(2026, 11, 16), date(2026, 11, 22)),
    ("orders this week", date(2026, 11, 23), TODAY),
    ("sales in the past 7 days", date(2026, 11, 21), date(2026, 11, 27)),
    ("sales over the last 2 weeks", date(2026, 11, 14), date(2026, 11, 27)),
    ("sales since Nov 1", date(2026, 11, 1), None),
    ("sales since 2026-10-15", date(2026, 10, 15), None),
    ("revenue in October", date(2026, 10, 1), date(2026, 10, 31)),
    ("revenue in December", date(2025, 12, 1), date(2025, 12, 31)),
    ("revenue last month", date(2026, 10, 1), date(2026, 10, 31)),
    ("revenue on 2026-11-20", date(2026, 11, 20), date(2026, 11, 20)),
    ("revenue between Nov 2 and Nov 8", date(2026, 11, 2), date(2026, 11, 8)),
    ("revenue from 3 November to 9 November", date(2026, 11, 3), date(2026, 11, 9)),
])
def test_time_phrases(text: str, since: date, until: date | None) -> None:
    span, rest = find_span(text, TODAY)
    assert span is not None
    assert (span.since, span.until) == (since, until)
    assert rest.split()[0] in ("revenue", "orders", "sales")


def test_no_time_phrase_and_comparisons() -> None:
    assert find_span("total revenue", TODAY) == (None, "total revenue")
    assert find_comparison("revenue week over week")[0] == 7
    assert find_comparison("orders day over day")[0] == 1
    assert find_comparison("revenue month-over-month")[0] == 30
    span = Span(date(2026, 11, 21), date(2026, 11, 27), "x")
    before = span.before(TODAY)
    assert (before.since, before.until) == (date(2026, 11, 14), date(2026, 11, 20))


def plan(question: str) -> Plan:
    return plan_question(question, VOCAB, TODAY)


@pytest.mark.parametrize(("question", "intent", "metric"), [
    ("What was revenue yesterday?", "value", "revenue"),
    ("how much did we sell? sales last week", "value", "revenue"),
    ("aov on ios", "value", "average_order_value"),
    ("revnue yesterday", "value", "revenue"),
    ("revenue by platform", "breakdown", "revenue"),
    ("top 3 countries by orders", "top", "orders"),
    ("which platform had the most orders?", "top", "orders"),
    ("daily orders last week", "trend", "orders"),
    ("revenue week over week", "comparison", "revenue"),
    ("why did sales drop last week?", "explain", "revenue"),
    ("forecast revenue for next week", "forecast", "revenue"),
    ("funnel from product_view to add_to_cart to purchase_complete", "funnel", None),
    ("how is the simple checkout experiment doing?", "experiment", None),
    ("is the data healthy?", "health", None),
    ("what does add_to_cart track?", "catalog", None),
    ("how is aov defined?", "catalog", "average_order_value"),
    ("what is our churn rate?", "unknown", None),
    ("customer lifetime value", "unknown", None),
])
def test_intents_and_metrics(question: str, intent: str, metric: str | None) -> None:
    p = plan(question)
    assert (p.intent, p.metric) == (intent, metric), p.as_dict()


def test_filters_from_dimension_values_segments_and_ages() -> None:
    assert plan("sales on iOS yesterday").where == ["platform = 'ios'"]
    assert plan("revenue in Germany").where == ["country = 'DE'"]
    assert plan("orders from users over 65").where == ["age >= 65"]
    assert plan("orders from shoppers under 30").where == ["age < 30"]
    assert plan("orders by 18-24 year olds").where == ["age_group = '18-24'"]
    assert plan("revenue from seniors").segments == ["seniors"]
    assert plan("revenue from plus members on web").segments == ["plus_members"]
    assert plan("revenue from plus members on web").where == ["platform = 'web'"]


def test_breakdowns_top_and_grains() -> None:
    p = plan("top 2 countries by revenue last week")
    assert (p.by, p.limit, p.direction) == ("country", 2, "desc")
    assert plan("revenue per platform").by == "platform"
    assert plan("orders by device").by == "platform"
    assert plan("bottom 1 platform by orders").direction == "asc"
    assert plan("weekly orders").grain == "week"


def test_funnel_steps_experiment_and_event() -> None:
    p = plan("funnel add to cart -> purchase complete")
    assert p.steps == ["add_to_cart", "purchase_complete"]
    assert plan("funnel of add_to_cart").problems  # one step is not a funnel
    assert plan("how did the checkout experiment go?").experiment == "simple_checkout"
    assert plan("what does product_view track").event == "product_view"


def test_unknown_offers_the_closest_metrics() -> None:
    p = plan("how many sale refunds")
    assert p.intent in ("value", "unknown")
    p = plan("what is the checkout abandonment cost?")
    assert p.intent == "unknown"
    assert "nerve has no metric" in p.problems[0] or "no metric defines" in p.problems[0]


def test_numerals_skip_dates_and_keep_formatting() -> None:
    assert numerals("Revenue on 2026-11-27: 4,460.58 USD, up 12.5% (3 of 10)") == \
        ["4,460.58", "12.5", "3", "10"]


def test_unsupported_finds_invented_numbers() -> None:
    b = Builder("revenue yesterday", {})
    text = b.num("revenue", 4460.58, "SELECT 1", "query_metrics", "currency", "USD")
    assert text == "4,460.58 USD"
    assert unsupported(f"Revenue was {text}.", b.numbers.items) == []
    assert unsupported(f"Revenue was {text}, about 4,500 USD.", b.numbers.items) == ["4,500"]
    assert unsupported("Top 3 by revenue", [], also="top 3 countries") == []


def test_builder_refuses_a_number_no_tool_produced() -> None:
    b = Builder("orders yesterday", {})
    b.say(f"Orders: {b.num('orders', 28, 'SELECT count(*)', 'query_metrics')}.")
    assert b.finish().answer == "Orders: 28."
    b.say("That is 12 more than usual.")
    with pytest.raises(DishonestAnswerError, match="12"):
        b.finish()


def test_a_filter_that_matches_nothing_is_not_dropped_silently() -> None:
    p = plan("revenue in Narnia last week")
    assert p.intent == "unknown"
    assert p.ignored == ["in narnia"]
    assert "platform (android, ios, web)" in p.suggestions
    assert plan("revenue for users on ios").ignored == []


def test_a_breakdown_names_a_dimension_or_an_events_property_or_is_declined() -> None:
    vocab = Vocabulary(VOCAB.metrics, VOCAB.dimensions, VOCAB.segments, VOCAB.events,
                       properties=("payment_provider", "gateway", "price"))
    assert plan_question("revenue by gateway yesterday", vocab, TODAY).by == "gateway"
    assert plan_question("revenue by provider", vocab, TODAY).by == "payment_provider"
    p = plan_question("revenue by gateway yesterday", VOCAB, TODAY)
    assert (p.intent, p.by, p.ignored) == ("unknown", None, ["by gateway"])
    assert "cannot break it down that way" in p.problems[0]
    assert "platform" in p.suggestions


@pytest.mark.parametrize(("question", "premise"), [
    ("why did sales drop last week?", "down"),
    ("why did orders fall yesterday", "down"),
    ("why are orders down", "down"),
    ("why did revenue go up last week?", "up"),
    ("why did orders increase", "up"),
    ("why did orders change yesterday?", None),
    ("why did orders drop for users who signed up", "down"),
])
def test_a_why_question_says_which_way_it_assumes_the_metric_moved(
        question: str, premise: str | None) -> None:
    p = plan(question)
    assert (p.intent, p.premise) == ("explain", premise), p.as_dict()


def test_a_why_question_keeps_its_filter() -> None:
    p = plan("why did orders drop on Nov 25 on android?")
    assert (p.intent, p.where) == ("explain", ["platform = 'android'"])


SHOP = Vocabulary(VOCAB.metrics,
                  {**VOCAB.dimensions, "os": ("os name", ("Android", "iOS")),
                   "plan": ("membership", ("free", "plus")), "app_version": ("app", ())},
                  VOCAB.segments, VOCAB.events, properties=("payment_provider", "revenue"))


@pytest.mark.parametrize(("question", "where"), [
    ("how many orders where country is DE last week", ["country = 'DE'"]),
    ("orders where country = DE", ["country = 'DE'"]),
    ("orders where country == 'de'", ["country = 'DE'"]),
    ('orders where country = "De"', ["country = 'DE'"]),
    ("orders with country = DE last week", ["country = 'DE'"]),
    ("orders with country DE", ["country = 'DE'"]),
    ("orders country is DE", ["country = 'DE'"]),
    ("orders where country is Germany", ["country = 'DE'"]),
    ("orders for DE only", ["country = 'DE'"]),
    ("revenue with plan PLUS", ["plan = 'plus'"]),
    ("orders whose country is DE", ["country = 'DE'"]),
    ("orders where os is ios", ["os = 'iOS'"]),  # the dimension named, not platform
    ("orders where age group = 65+", ["age_group = '65+'"]),  # not age >= 65
    ("orders where age >= 65", ["age >= 65"]),
    ("orders where age > 65", ["age > 65"]),
    ("orders where country is DE and plan is plus", ["country = 'DE'", "plan = 'plus'"]),
])
def test_a_filter_stated_with_its_dimension_is_read(question: str, where: list[str]) -> None:
    p = plan_question(question, SHOP, TODAY)
    assert (p.intent, p.metric is not None, p.where, p.ignored) == \
        ("value", True, where, []), p.as_dict()


def test_a_stated_filter_survives_breakdowns_tops_and_why() -> None:
    p = plan_question("top 3 countries by orders where platform is ios", SHOP, TODAY)
    assert (p.intent, p.by, p.where) == ("top", "country", ["platform = 'ios'"])
    p = plan_question("revenue by platform where country is DE", SHOP, TODAY)
    assert (p.intent, p.by, p.where) == ("breakdown", "platform", ["country = 'DE'"])
    p = plan_question("why did orders drop last week where plan is plus", SHOP, TODAY)
    assert (p.intent, p.where) == ("explain", ["plan = 'plus'"])
    p = plan_question("which platform is best for revenue", SHOP, TODAY)
    assert (p.intent, p.by, p.where, p.ignored) == ("top", "platform", [], [])
    assert plan_question("where did revenue come from", SHOP, TODAY).ignored == []


@pytest.mark.parametrize(("question", "ignored", "says"), [
    ("revenue where plan is pro", ["where plan is pro"],
     "the dimension plan has no value 'pro' in the data (it has free, plus)"),
    ("orders where app_version is 2.3.0", ["where app version is 2.3.0"],
     "it does not list the values of app_version"),
    ("orders where coupon is SAVE10", ["where coupon is save10"], "nothing in the data"),
    ("orders where payment provider = 'stripe'", ["where payment provider is stripe"],
     "nothing in the data"),
    ("orders where country is not DE", ["where country is not de"], "leave it out"),
    ("orders where plan != free", ["where plan is not free"], "leave it out"),
    ("orders not on ios", ["not on ios"], "leave it out"),
    ("orders excluding web", ["excluding web"], "leave it out"),
    ("orders where platform is ios or android", ["android"], "a second platform"),
    ("orders on ios and android", ["ios"], "a second platform"),
    ("orders in Germany or France", ["france"], "a second country"),
])
def test_a_filter_nerve_cannot_read_is_declined_with_its_words(
        question: str, ignored: list[str], says: str) -> None:
    p = plan_question(question, SHOP, TODAY)
    assert (p.intent, p.ignored) == ("unknown", ignored), p.as_dict()
    assert f"nerve did not understand {ignored[0]!r} as a filter" in p.problems[0]
    assert says in p.problems[0]


def test_funnels_and_forecasts_decline_a_filter_they_would_not_apply() -> None:
    p = plan_question("funnel from product_view to purchase_complete on ios", SHOP, TODAY)
    assert (p.intent, p.steps) == ("unknown", ["product_view", "purchase_complete"])
    assert "cannot filter a funnel, so it did not apply 'on ios'" in p.problems[0]
    assert plan_question("funnel from product_view to purchase_complete", SHOP,
                         TODAY).intent == "funnel"
    p = plan_question("forecast orders where country is DE", SHOP, TODAY)
    assert p.intent == "unknown"
    assert "cannot filter a forecast, so it did not apply" in p.problems[0]
    assert plan_question("forecast orders", SHOP, TODAY).intent == "forecast"


def test_top_n_ranks_a_dimension_by_a_metric_that_is_also_a_property() -> None:
    # purchase_complete has a property revenue: "by revenue" is still the metric to rank by
    p = plan_question("top 3 countries by revenue last week", SHOP, TODAY)
    assert (p.intent, p.metric, p.by, p.limit, p.ignored) == \
        ("top", "revenue", "country", 3, []), p.as_dict()
    p = plan_question("bottom 2 platforms by sales", SHOP, TODAY)
    assert (p.intent, p.metric, p.by, p.direction) == ("top", "revenue", "platform", "asc")
    p = plan_question("orders by revenue", SHOP, TODAY)  # no ranking: one metric or other
    assert (p.intent, p.ignored) == ("unknown", ["by revenue"])
    assert "revenue is a metric, not a dimension" in p.problems[0]


BOOKINGS = Vocabulary((MetricInfo("bookings", "Bookings"), *VOCAB.metrics),
                      VOCAB.dimensions, VOCAB.segments, VOCAB.events)


@pytest.mark.parametrize(("question", "ignored"), [
    ("bookings by user_id", "by user id"),
    ("how many bookings by user?", "by user"),
    ("bookings per anonymous_id last week", "per anonymous id"),
    ("bookings for each user", "for each user"),
    ("how many bookings did each customer make", "each customer"),
    ("bookings broken down by device_id", "broken down by device id"),
    ("top 10 users by bookings", "users"),
    ("which customer had the most bookings", "customer"),
])
def test_a_breakdown_by_a_person_or_a_device_is_declined_saying_why(
        question: str, ignored: str) -> None:
    p = plan_question(question, BOOKINGS, TODAY)
    assert (p.intent, p.by, p.ignored) == ("unknown", None, [ignored]), p.as_dict()
    assert f"nerve did not understand {ignored!r} as a breakdown" in p.problems[0]
    assert "too many groups" in p.problems[0]
    assert "`nerve sql`" in p.problems[0]
    assert p.suggestions == ["platform", "country", "age_group"]  # those with few values


def test_a_device_is_the_platform_when_there_is_one() -> None:
    assert plan_question("bookings for each device", BOOKINGS, TODAY).by == "platform"
    no_platform = Vocabulary(BOOKINGS.metrics, {"country": ("country", ("DE", "US"))})
    p = plan_question("bookings for each device", no_platform, TODAY)
    assert (p.intent, p.ignored) == ("unknown", ["for each device"])
    assert "device is not a dimension" in p.problems[0]


@pytest.mark.parametrize(("question", "ignored", "says"), [
    ("orders broken down by gateway", ["broken down by gateway"], "nothing in the data"),
    ("revenue per gateway last week", ["per gateway"], "nothing in the data"),
    ("revenue by platform and country", ["and country"], "a second breakdown"),
    ("revenue by platform by country", ["by country"], "a second breakdown"),
    ("which day had the most orders", ["most"], "a ranking needs a dimension"),
])
def test_a_breakdown_nerve_cannot_read_is_declined_with_its_words(
        question: str, ignored: list[str], says: str) -> None:
    p = plan_question(question, SHOP, TODAY)
    assert (p.intent, p.ignored) == ("unknown", ignored), p.as_dict()
    assert f"nerve did not understand {ignored[0]!r} as a breakdown: " in p.problems[0]
    assert says in p.problems[0]


@pytest.mark.parametrize(("question", "where", "segments"), [
    ("orders by users over 65", ["age >= 65"], []),
    ("orders placed by seniors", [], ["seniors"]),
    ("orders by 18-24 year olds", ["age_group = '18-24'"], []),
    ("total revenue across all platforms", [], []),
])
def test_a_by_that_is_no_breakdown_is_left_to_the_filters(
        question: str, where: list[str], segments: list[str]) -> None:
    p = plan_question(question, SHOP, TODAY)
    assert (p.intent, p.by, p.where, p.segments, p.ignored) == \
        ("value", None, where, segments, []), p.as_dict()


def test_a_metric_named_with_per_is_no_breakdown() -> None:
    vocab = Vocabulary((*VOCAB.metrics, MetricInfo("revenue_per_user",
                                                   "Revenue per active user")),
                       VOCAB.dimensions)
    p = plan_question("revenue per user last week", vocab, TODAY)
    assert (p.intent, p.metric, p.ignored) == ("value", "revenue_per_user", [])
    p = plan_question("revenue per active user by platform", vocab, TODAY)
    assert (p.intent, p.metric, p.by) == ("breakdown", "revenue_per_user", "platform")


@pytest.mark.parametrize(("question", "says"), [
    ("daily orders by platform", "nerve ask cannot break a trend down, so it did not apply "
     "'by platform': `nerve metrics query orders --by platform --grain day` gives it"),
    ("orders by country over time", "cannot break a trend down"),
    ("revenue week over week by country", "cannot break a comparison down"),
    ("forecast orders by country", "cannot break a forecast down, so it did not apply "
     "'by country': the forecast would be of all orders"),
    ("how is the simple checkout experiment doing by platform",
     "`nerve experiment analyze simple_checkout --by platform` gives it"),
    # ranked by the total, the daily grain was dropped without a word
    ("top 3 countries by daily revenue", "`nerve metrics query revenue --by country "
     "--grain day` gives it"),
])
def test_a_tool_that_takes_no_breakdown_declines_it(question: str, says: str) -> None:
    p = plan(question)
    assert (p.intent, p.by) == ("unknown", None), p.as_dict()
    assert says in p.problems[0]
    assert len(p.ignored) == 1


def test_funnels_why_questions_and_readouts_take_their_breakdown() -> None:
    p = plan_question("funnel from product_view to purchase_complete by platform", SHOP,
                      TODAY)
    assert (p.intent, p.steps, p.by) == ("funnel", ["product_view", "purchase_complete"],
                                         "platform")
    p = plan_question("funnel from product_view to purchase_complete per user id", SHOP,
                      TODAY)
    assert (p.intent, p.ignored) == ("unknown", ["per user id"])
    p = plan_question("why did orders drop last week by country", SHOP, TODAY)
    assert (p.intent, p.by) == ("explain", "country")
    p = plan_question("why did orders drop last week per user", SHOP, TODAY)
    assert (p.intent, p.ignored) == ("unknown", ["per user"])
    p = plan("simple checkout experiment results by variant")
    assert (p.intent, p.experiment, p.ignored) == ("experiment", "simple_checkout", [])


def test_a_declined_filter_suggests_the_dimension_it_names() -> None:
    assert plan_question("revenue where plan is pro", SHOP, TODAY).suggestions == \
        ["plan (free, plus)"]
    assert plan_question("orders on ios and android", SHOP, TODAY).suggestions == \
        ["platform (android, ios, web)"]


def test_the_metric_said_first_is_the_one_asked_for() -> None:
    """"orders placed by customers" answered the metric buyers (synonym customers): the
    longest phrase won wherever it stood."""
    vocab = Vocabulary((*VOCAB.metrics, MetricInfo("buyers", "Buyers", "Distinct buyers.",
                                                   ("customers",))), VOCAB.dimensions)
    assert plan_question("orders placed by customers", vocab, TODAY).metric == "orders"
    assert plan_question("how many customers placed orders", vocab,
                         TODAY).metric == "buyers"
    assert plan_question("average order value last week", vocab,
                         TODAY).metric == "average_order_value"


def test_a_property_named_whole_is_no_metric_it_starts_with() -> None:
    """"by session_id" was read as the metric sessions, and declined."""
    vocab = Vocabulary((*VOCAB.metrics, MetricInfo("sessions", "Sessions")),
                       VOCAB.dimensions, properties=("session_id",))
    p = plan_question("orders by session_id last week", vocab, TODAY)
    assert (p.intent, p.by, p.ignored) == ("breakdown", "session_id", []), p.as_dict()


PEOPLE = Vocabulary((
    MetricInfo("orders", "Orders", counts="events", over="purchase_complete"),
    MetricInfo("buyers", "Buyers", counts="people", over="purchase_complete"),
    MetricInfo("active_users", "Active users", synonyms=("users",), counts="people",
               over="*"),
    MetricInfo("cart_adds", "Cart adds", counts="events", over="add_to_cart"),
    MetricInfo("paid_orders", "Paid orders", counts="events",
               over="purchase_complete where status = 'paid'"),
), events=("add_to_cart", "purchase_complete"))


@pytest.mark.parametrize(("question", "metric"), [
    ("how many users placed orders last week", "buyers"),
    ("how many people placed orders", "buyers"),
    ("the number of distinct customers with orders yesterday", "buyers"),
    ("how many orders last week", "orders"),
    ("how many users yesterday", "active_users"),
])
def test_how_many_people_counts_the_people_behind_a_count(question: str,
                                                          metric: str) -> None:
    """"how many people requested a ride" answered the count of ride requests."""
    p = plan_question(question, PEOPLE, TODAY)
    assert (p.intent, p.metric) == ("value", metric), p.as_dict()


def test_how_many_people_declines_when_no_metric_counts_them() -> None:
    for question, over in [("how many people made cart adds", "add_to_cart"),
                           ("how many customers made paid orders",
                            "purchase_complete where status = 'paid'")]:
        p = plan_question(question, PEOPLE, TODAY)
        assert (p.intent, p.metric) == ("unknown", None), p.as_dict()
        assert f"counts {over} events, not the people" in p.problems[0]
        assert p.suggestions == ["buyers", "active_users"]


def test_a_label_with_an_auxiliary_in_the_question_is_the_metric() -> None:
    """"how many lessons were completed last week?" was declined for the metric labelled
    "Lessons completed": the "were" between its words hid the label."""
    vocab = Vocabulary((MetricInfo("lessons_completed", "Lessons completed"),
                        MetricInfo("lessons_started", "Lessons started")))
    for question, metric in [("how many lessons were completed last week?",
                              "lessons_completed"),
                             ("how many lessons got started yesterday", "lessons_started"),
                             ("lessons completed yesterday", "lessons_completed")]:
        p = plan_question(question, vocab, TODAY)
        assert (p.intent, p.metric) == ("value", metric), p.as_dict()


def test_a_dimension_whose_plural_adds_only_an_s_is_read_in_the_plural() -> None:
    """"cuisines", "sources" or "stages" are "cuisine", "source" and "stage": the plural
    only adds an s (stripping "es" gave "cuisin", and the ranking was declined)."""
    vocab = Vocabulary(VOCAB.metrics,
                       {"cuisine": ("cuisine", ("pizza", "sushi")),
                        "source": ("source", ("web", "import")),
                        "country": ("country", ("DE", "US"))})
    p = plan_question("top 3 cuisines by orders last week", vocab, TODAY)
    assert (p.intent, p.by, p.limit, p.ignored) == ("top", "cuisine", 3, [])
    assert plan_question("orders by sources", vocab, TODAY).by == "source"
    assert plan_question("top 2 countries by revenue", vocab, TODAY).by == "country"
    assert plan_question("revenue for each cuisine", vocab, TODAY).by == "cuisine"


APP = Vocabulary(
    metrics=(MetricInfo("meditations", "Meditations completed", "Meditations finished.",
                        counts="events", over="meditation_completed",
                        events=("meditation_completed",)),),
    dimensions={"platform": ("ios or android", ("android", "ios"))},
    events=("app_opened", "item_added", "meditation_started", "meditation_completed",
            "remove_from_cart", "checkout_start", "payment_submitted", "screen"))


@pytest.mark.parametrize(("question", "event"), [
    ("how many people opened the app yesterday", "app_opened"),
    ("how many times was the app opened yesterday", "app_opened"),
    ("app opens last week", "app_opened"),
    ("how many items were added yesterday", "item_added"),
    ("how many times did users remove from the cart", "remove_from_cart"),
    ("how many checkouts were started yesterday", "checkout_start"),
    ("submitted payments last week", "payment_submitted"),
])
def test_an_event_is_named_in_everyday_words(question: str, event: str) -> None:
    # "opened the app" is app_opened: its words in any order and form; the answer names
    # the event (no metric counts it) instead of saying nerve has nothing for it
    plan = plan_question(question, APP, TODAY)
    assert plan.intent == "unknown"
    assert plan.problems[0].startswith(f"the event {event} is cataloged, but no metric "
                                       "counts it"), plan.problems


@pytest.mark.parametrize("question", [
    "how many people used the app yesterday",   # "app" alone: no event
    "what was opened yesterday",
    "how many items were removed",              # remove_from_cart needs "from" and "cart"
    "how many checkouts",
])
def test_a_word_of_an_event_alone_names_no_event(question: str) -> None:
    plan = plan_question(question, APP, TODAY)
    assert not any("is cataloged" in p for p in plan.problems), plan.problems


def test_the_steps_of_a_funnel_may_be_said_in_everyday_words() -> None:
    plan = plan_question("opened the app -> started a meditation -> completed a meditation",
                         APP, TODAY)
    assert plan.steps == ["app_opened", "meditation_started", "meditation_completed"]


@pytest.mark.parametrize(("question", "event", "where"), [
    ("why did item added drop?", "item_added", []),
    ("why did fewer people open the app last week?", "app_opened", []),
    ("why did items added drop on android?", "item_added", ["platform = 'android'"]),
])
def test_why_an_event_no_metric_counts_moved_explains_its_count(
        question: str, event: str, where: list[str]) -> None:
    plan = plan_question(question, APP, TODAY)
    assert (plan.intent, plan.metric, plan.event) == ("explain", None, event)
    assert plan.premise == "down"
    assert plan.where == where
    # a metric named wins over an event: "why did meditations drop" is the metric
    named = plan_question("why did meditations completed drop?", APP, TODAY)
    assert (named.metric, named.event) == ("meditations", None)


@pytest.mark.parametrize(("question", "metric", "event"), [
    # the metric's name said only inside an event it does not read: the event is asked
    # for (meditations counts meditation_completed; this was answered with completions)
    ("how many meditations were started yesterday", None, "meditation_started"),
    ("meditation starts last week", None, "meditation_started"),
    # the event the metric reads, or the metric said beside the event: the metric
    ("how many meditations were completed yesterday", "meditations", None),
    ("meditations yesterday", "meditations", None),
])
def test_a_metric_said_only_inside_another_events_name_is_not_that_metric(
        question: str, metric: str | None, event: str | None) -> None:
    plan = plan_question(question, APP, TODAY)
    assert plan.metric == metric
    if event:
        assert plan.problems[0].startswith(f"the event {event} is cataloged"), plan.problems


@pytest.mark.parametrize("question", [
    "what changed in orders last week?", "what happened to revenue on ios?",
    "what's behind the drop in orders?", "what is behind the revenue change?"])
def test_what_changed_in_a_metric_asks_for_its_drivers(question: str) -> None:
    # "what changed in signups?" got the two weeks' totals, not what moved them
    assert plan(question).intent == "explain"


@pytest.mark.parametrize("question", [
    "how did orders change last week?", "revenue week over week", "what is our revenue?"])
def test_a_change_asked_for_as_figures_is_still_a_comparison(question: str) -> None:
    assert plan(question).intent != "explain"


#: search_performed names the act (search) and a verb that only says it happened;
#: session_start's verb says more, and two events of one act leave it unsaid
_ACTS = Vocabulary(
    metrics=(*VOCAB.metrics,
             MetricInfo("search_volume", "Search volume", counts="events",
                        over="search_performed", events=("search_performed",))),
    dimensions=VOCAB.dimensions,
    events=(*VOCAB.events, "search_performed", "session_start", "payment_made",
            "payment_done"))


@pytest.mark.parametrize("question", [
    "who searched last week?", "how many searches last week", "searching on ios yesterday",
    "how many searches were performed", "how often did people search last week"])
def test_the_act_of_an_event_names_it_in_any_form(question: str) -> None:
    """"who searched?" mapped to no event of search_performed: its words were asked for
    both, though "performed" only says the search happened."""
    plan = plan_question(question, _ACTS, TODAY)
    assert (plan.intent, plan.metric, plan.problems) == ("value", "search_volume", [])


def test_an_event_no_metric_counts_is_named_by_its_act() -> None:
    vocab = Vocabulary(VOCAB.metrics, events=_ACTS.events)
    plan = plan_question("who searched the most?", vocab, TODAY)
    assert plan.intent == "unknown"
    assert plan.problems[0].startswith("the event search_performed is cataloged, but no "
                                       "metric counts it"), plan.problems


@pytest.mark.parametrize("question", [
    "how many sessions yesterday",   # session_start: "start" says more than that it happened
    "how many payments yesterday",   # payment_made and payment_done: which one is not said
])
def test_a_word_of_an_event_names_it_only_when_its_verb_says_nothing_more(
        question: str) -> None:
    plan = plan_question(question, Vocabulary(VOCAB.metrics, events=_ACTS.events), TODAY)
    assert (plan.intent, plan.event) == ("unknown", None)
    assert "no metric or event" in plan.problems[0], plan.problems


@pytest.mark.parametrize(("question", "since", "until"), [
    ("orders by platform last week", date(2026, 11, 16), date(2026, 11, 22)),
    ("orders last week by platform", date(2026, 11, 16), date(2026, 11, 22)),
    ("orders by platform in the past week", date(2026, 11, 21), date(2026, 11, 27)),
    ("orders by platform over the past month", date(2026, 10, 28), date(2026, 11, 27)),
])
def test_a_breakdown_over_a_period_is_answered(question: str, since: date,
                                               until: date) -> None:
    """"in the past week" was no period nerve read, so the breakdown was declined."""
    plan = plan_question(question, VOCAB, TODAY)
    assert (plan.intent, plan.metric, plan.by, plan.problems) == (
        "breakdown", "orders", "platform", [])
    assert plan.span is not None
    assert (plan.span.since, plan.span.until) == (since, until)
