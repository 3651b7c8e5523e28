"""One shopping session, step by step: visit, search, view, cart, checkout, pay, purchase.

Each session draws from its own random stream, seeded from the simulation seed, the user
and the session's number, so turning an incident or a fault on changes only the sessions
it touches: a clean run and an incident run differ exactly where the incident is.
"""

from __future__ import annotations

import uuid
from random import Random
from typing import Any

from nerve.demo import _world as w
from nerve.demo._scenario import (
    ADD_TO_CART_LOSS,
    DAY_MS,
    EXPERIMENT,
    HOUR_MS,
    PAYMENT_FAIL_RATE,
    PAYMENT_OUTAGE_FAIL_RATE,
    Timeline,
    iso,
)
from nerve.demo._truth import SimMessage, Tally
from nerve.demo._users import User, timezone_of

__all__ = ["Session"]

_CART = {g[0]: g[4] for g in w.AGE_GROUPS}
_DONE = {g[0]: g[5] for g in w.AGE_GROUPS}
_PLATFORM_CART = {"ios": 1.10, "android": 1.0, "web": 0.95}
_PLATFORM_DONE = {"ios": 1.0, "android": 0.96, "web": 1.04}
_METHODS = {"ios": (("apple_pay", "card", "paypal"), (0.35, 0.50, 0.15)),
            "android": (("google_pay", "card", "paypal"), (0.30, 0.55, 0.15)),
            "web": (("card", "paypal"), (0.70, 0.30))}
_DECLINES = (("card_declined", False), ("insufficient_funds", False),
             ("authentication_failed", True))
_REFUND_REASONS = ("damaged", "wrong_size", "not_as_described", "late_delivery",
                   "changed_mind")

#: fault rates (per eligible message or session) when faults are on
_WRONG_TYPE = 0.08
_UNKNOWN_PROPERTY = 0.08
_MISSING_REQUIRED = 0.25
_UNPLANNED = 0.015
_DOUBLE_FIRED = 0.05
_DUPLICATE = 0.004
_LATE = 0.05
_SKEWED = 0.3


class Session:
    """Generates the messages of one session into ``out`` (unsorted)."""

    def __init__(self, *, seed: int, user: User, start_ms: int, timeline: Timeline,
                 products: list[w.Product], product_weights: list[float], tally: Tally,
                 faults: bool) -> None:
        self.rng = Random(seed * 2)
        # faults draw from their own stream so that the clean run's sessions are the same
        self.frng = Random(seed * 2 + 1) if faults else None
        self.user = user
        self.t = start_ms
        self.tl = timeline
        self.products = products
        self.cum_weights = product_weights
        self.tally = tally
        self.out: list[SimMessage] = []
        self.session_id = f"s_{self.rng.getrandbits(64):016x}"
        self.skew = 0
        self.late = False
        #: the web session's referrer and landing query string (campaign parameters)
        self.referrer = ""
        self.search = ""
        if self.frng is not None and user.platform != "web":
            u = self.frng.random()
            if timeline.live_start_ms - 6 * HOUR_MS <= start_ms < timeline.live_start_ms - HOUR_MS:
                self.late = u < _LATE
            elif start_ms >= timeline.live_start_ms and u < _SKEWED:
                sign = 1 if self.frng.random() < 0.5 else -1
                # beyond the clock_skew check's default threshold (10m), so it is found
                self.skew = sign * self.frng.randint(15 * 60, 45 * 60) * 1000
        self.ctx = self._context()

    # message building ----------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        u = self.user
        ctx: dict[str, Any] = {
            "library": u.library, "device": u.device, "os": u.os,
            "locale": u.country.locale, "timezone": timezone_of(u.country.code), "ip": u.ip,
        }
        if u.platform == "web":
            ctx["userAgent"] = u.user_agent
        else:
            version, build = self.tl.app(u.platform, self.t)
            ctx["app"] = {"name": "Shop", "version": version, "build": build,
                          "namespace": "com.example.shop"}
            ctx["network"] = {"wifi": self.rng.random() < 0.6}
        return ctx

    def _emit(self, message: dict[str, Any], fault: str | None = None,
              server: bool = False) -> dict[str, Any]:
        """Stamp ids and time on ``message`` and record it; nothing after the end of time."""
        at = self.t
        if at >= self.tl.end_ms:
            return message
        u = self.user
        # the server's clock is right and its queue never waits offline
        skew, late = (0, False) if server else (self.skew, self.late)
        message["userId"] = u.user_id
        message["anonymousId"] = u.anonymous_id
        message["messageId"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        message["timestamp"] = iso(at + skew)
        if "context" not in message:
            message["context"] = self.ctx
        if late:
            fault = "late"
        elif skew and fault is None:
            fault = "clock_skew"
        live = late or at >= self.tl.live_start_ms
        sim = SimMessage(message, at, "server" if server else u.platform, live, fault, skew)
        self.out.append(sim)
        if (fault is None and self.frng is not None and not skew and not late
                and self.frng.random() < _DUPLICATE):
            self.out.append(SimMessage(message, at, sim.source, live, "duplicate_message_id"))
        return message

    def _page_context(self, path: str, title: str) -> dict[str, Any]:
        url = f"https://shop.example.com{path}"
        return {**self.ctx, "page": {"path": path, "url": url, "title": title,
                                     "referrer": self.referrer, "search": self.search}}

    def track(self, event: str, props: dict[str, Any], *, path: str | None = None,
              fault: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "track", "event": event, "properties": props}
        if self.user.platform == "web" and path is not None:
            message["context"] = self._page_context(path, f"{event} - Shop")
        return self._emit(message, fault)

    def wait(self, low_s: float, high_s: float) -> None:
        self.t += int(self.rng.uniform(low_s, high_s) * 1000)

    def _fault(self, rate: float) -> bool:
        """A per-message fault draw; never on sessions that are late or skewed as a whole."""
        if self.frng is None or self.late or self.skew:
            return False
        return self.frng.random() < rate

    # the journey ---------------------------------------------------------------------------

    def run(self, *, first: bool, identify: bool) -> list[SimMessage]:
        """The session's messages: identify if asked, then the visit's journey."""
        rng, u = self.rng, self.user
        channel, _wt, utm_source, utm_medium = rng.choices(
            w.CHANNELS, [c[1] for c in w.CHANNELS])[0]
        if u.platform != "web" and channel in ("organic_search", "paid_search", "referral"):
            channel = "direct"
        self.referrer = (f"https://www.{utm_source}.com/" if utm_source and channel not in
                         ("email", "push") else "")
        self.search = (f"?utm_source={utm_source}&utm_medium={utm_medium}&utm_campaign="
                       f"autumn_sale" if channel in ("paid_search", "email", "social") else "")
        if self.search:
            self.ctx["campaign"] = {"name": "autumn_sale", "source": utm_source,
                                    "medium": utm_medium}
        landing = "Home" if channel != "push" else "Product"
        path = "/" if landing == "Home" else "/products"
        if identify:
            self._emit({"type": "identify", "traits": u.traits(self.t)})
        self.track("session_start", {"session_id": self.session_id, "channel": channel,
                                     "is_first_session": first,
                                     "landing_screen": path if u.platform == "web" else landing},
                   path=path)
        self.t += rng.randint(100, 900)
        if u.platform == "web":
            self._emit({"type": "page", "name": landing, "properties": {
                "path": path, "url": f"https://shop.example.com{path}", "title": "Shop",
                "referrer": self.referrer, "search": self.search},
                "context": self._page_context(path, "Shop")})
        else:
            props = {"from_notification": True} if channel == "push" else {}
            self._emit({"type": "screen", "name": landing, "properties": props})
        cart = self._browse()
        if rng.random() < (0.02 if u.platform == "android" else 0.012):
            self._app_error()
        if cart and rng.random() < min(0.9, 0.52 * u.intent ** 0.5):
            self._checkout(cart)
        return self.out

    def _browse(self) -> list[tuple[w.Product, int]]:
        rng, u = self.rng, self.user
        lists: list[str] = []
        if rng.random() < (0.55 if u.platform == "web" else 0.48):
            for _ in range(1 + (rng.random() < 0.3)):
                self.wait(4, 30)
                zero = rng.random() < 0.06
                props: dict[str, Any] = {"session_id": self.session_id,
                                         "query": rng.choice(w.SEARCH_TERMS),
                                         "results_count": 0 if zero else rng.randint(3, 60)}
                if rng.random() < 0.2:
                    props["category_filter"] = rng.choice(
                        ("sneakers", "running", "boots", "sandals", "apparel", "accessories"))
                self.track("product_search", props, path="/search")
                if not zero:
                    lists.extend(["search_results"] * _geometric(rng, 0.42, 8))
        if not lists:
            lists = [rng.choice(("home", "category", "recommendations"))
                     for _ in range(_geometric(rng, 0.4, 8))]
        p_add = min(0.6, 0.095 * _CART[u.age_group] * _PLATFORM_CART[u.platform]
                    * u.country.buy ** 0.5 * (1.25 if u.plan == "plus" else 1.0) * u.intent)
        cart: list[tuple[w.Product, int]] = []
        for position, source in enumerate(lists, start=1):
            self.wait(6, 70)
            product = rng.choices(self.products, cum_weights=self.cum_weights)[0]
            props = self._product(product, self._fault(_WRONG_TYPE) and u.platform == "web")
            props["list"] = source
            if source != "home":
                props["position"] = position
            fault = "wrong_type" if isinstance(props["price"], str) else None
            self.track("product_view", props, path=f"/products/{product.product_id}", fault=fault)
            if self._fault(_UNPLANNED):
                self.t += 2500
                self._unplanned(product)
            if rng.random() >= p_add:
                continue
            bug = self.tl.incident("android_add_to_cart_drop")
            if (u.platform == "android" and bug is not None and bug.active(self.t)
                    and rng.random() < ADD_TO_CART_LOSS):
                continue  # the tap does nothing: no event, no cart
            self.wait(3, 40)
            quantity = rng.choices((1, 2, 3), (0.85, 0.12, 0.03))[0]
            cart.append((product, quantity))
            props = self._product(product, self._fault(_WRONG_TYPE) and u.platform == "web")
            props.update(quantity=quantity, cart_size=sum(q for _p, q in cart))
            fault = "wrong_type" if isinstance(props["price"], str) else None
            self.track("add_to_cart", props, path=f"/products/{product.product_id}",
                       fault=fault)
        for item in list(cart):
            if rng.random() < 0.12:
                self.wait(10, 60)
                cart.remove(item)
                props = self._product(item[0], False)
                props["quantity"] = item[1]
                self.track("remove_from_cart", props, path="/cart")
        return cart

    def _product(self, product: w.Product, price_as_text: bool) -> dict[str, Any]:
        return {"session_id": self.session_id, "product_id": product.product_id,
                "product_name": product.product_name, "category": product.category,
                "price": f"{product.price:.2f}" if price_as_text else product.price,
                "currency": "USD"}

    def _unplanned(self, product: w.Product) -> None:
        if self.user.platform == "web":
            self.track("Product Shared", {"product_id": product.product_id,
                                          "share_via": "copy_link"},
                       path=f"/products/{product.product_id}", fault="unplanned_event")
        else:
            self.track("wishlist_add", {"session_id": self.session_id,
                                        "product_id": product.product_id},
                       fault="unplanned_event")

    def _app_error(self) -> None:
        rng, u = self.rng, self.user
        self.wait(2, 60)
        code = rng.choices(("network_timeout", "api_500", "image_load_failed", "crash",
                            "payment_sdk_error"), (0.4, 0.25, 0.2, 0.1, 0.05))[0]
        screen = "/products" if u.platform == "web" else "ProductDetail"
        props: dict[str, Any] = {"session_id": self.session_id, "error_code": code,
                                 "screen": screen, "fatal": code == "crash"}
        fault = None
        if u.platform == "android" and self._fault(_MISSING_REQUIRED):
            del props["screen"]
            fault = "missing_required"
        self.track("app_error", props, path="/products", fault=fault)

    def _checkout(self, cart: list[tuple[w.Product, int]]) -> None:
        rng, u, tl = self.rng, self.user, self.tl
        self.wait(10, 90)
        order_id = f"o_{rng.getrandbits(48):012x}"
        value = round(sum(p.price * q for p, q in cart), 2)
        items = sum(q for _p, q in cart)
        variant = u.variant if self.t >= tl.experiment_start_ms else None
        if variant is not None:
            self.t -= 150  # the variant is decided as the checkout renders
            self.track("experiment_viewed", {
                "experiment_id": EXPERIMENT.key, "variant_id": variant,
                "experiment_name": EXPERIMENT.name, "variant_name": variant.title(),
                "session_id": self.session_id}, path="/checkout")
            self.t += 150
            if self.t < tl.end_ms:
                self.tally.exposure(variant, u.user_id, self.t)
        simple = variant == "simple"
        props: dict[str, Any] = {"session_id": self.session_id, "order_id": order_id,
                                 "currency": "USD", "cart_value": value, "item_count": items,
                                 "checkout_flow": "simple" if simple else "standard"}
        fault = None
        if u.platform == "ios" and self._fault(_UNKNOWN_PROPERTY):
            props["coupon_code"] = "WELCOME10"
            fault = "unknown_property"
        self.track("checkout_start", props, path="/checkout", fault=fault)
        p_done = min(0.95, _DONE[u.age_group] * _PLATFORM_DONE[u.platform]
                     * (1 + EXPERIMENT.true_lift if simple else 1.0))
        submitted = rng.random() < p_done
        if variant is not None and self.t < tl.end_ms:
            self.tally.checkout(variant, submitted)
        if not submitted:
            return
        self.wait(25, 120) if simple else self.wait(40, 240)
        method = rng.choices(*_METHODS[u.platform])[0]
        for attempt in range(3):
            provider = _provider(rng, method)
            pay = {"session_id": self.session_id, "order_id": order_id, "currency": "USD",
                   "payment_provider": provider, "payment_method": method}
            self.track("payment_submitted", {**pay, "amount": value}, path="/checkout/pay")
            self.wait(1.5, 8)
            outage = tl.incident("adyen_payment_outage")
            in_outage = provider == "adyen" and outage is not None and outage.active(self.t)
            fail_rate = PAYMENT_OUTAGE_FAIL_RATE if in_outage else PAYMENT_FAIL_RATE
            if rng.random() >= fail_rate:
                self._purchase(pay, value, cart, variant)
                return
            if in_outage:
                code, retryable = rng.choice(("provider_timeout", "provider_timeout",
                                              "provider_unavailable")), True
            else:
                code, retryable = rng.choice(_DECLINES)
            self.track("payment_failed", {**pay, "amount": value, "error_code": code,
                                          "retryable": retryable}, path="/checkout/pay")
            if attempt == 2 or rng.random() >= (0.55 if retryable else 0.35):
                return
            self.wait(10, 60)
            if rng.random() < 0.5:
                method = "paypal" if method != "paypal" else "card"

    def _purchase(self, pay: dict[str, Any], value: float,
                  cart: list[tuple[w.Product, int]], variant: str | None) -> None:
        rng, u = self.rng, self.user
        self.wait(0.8, 3)
        props = {**pay, "revenue": value, "item_count": sum(q for _p, q in cart),
                 "product_ids": sorted({p.product_id for p, _q in cart})}
        message = self.track("purchase_complete", props, path="/checkout/done")
        if self.t < self.tl.end_ms:
            self.tally.purchase(variant, u.user_id, value)
        if u.platform == "android" and self._fault(_DOUBLE_FIRED):
            self.t += 250
            self.track("purchase_complete", dict(message["properties"]),
                       path="/checkout/done", fault="double_fired")
        if rng.random() < 0.04:
            saved = self.t
            self.t += rng.randint(1 * DAY_MS, 12 * DAY_MS)
            amount = value if rng.random() < 0.7 else round(value * rng.uniform(0.2, 0.8), 2)
            self._emit({"type": "track", "event": "order_refunded",
                        "properties": {"order_id": pay["order_id"], "currency": "USD",
                                       "amount": amount, "reason": rng.choice(_REFUND_REASONS)},
                        "context": {"library": {"name": "analytics-python",
                                                "version": "2.4.0"}}}, server=True)
            self.t = saved


def _provider(rng: Random, method: str) -> str:
    """The shop routes wallets to adyen, PayPal to paypal and cards 60/40 stripe/adyen."""
    if method == "paypal":
        return "paypal"
    if method in ("apple_pay", "google_pay"):
        return "adyen"
    return "stripe" if rng.random() < 0.6 else "adyen"


def _geometric(rng: Random, p_stop: float, cap: int) -> int:
    """1 + the number of failures before the first success of a ``p_stop`` coin; at most cap."""
    n = 1
    while n < cap and rng.random() >= p_stop:
        n += 1
    return n
