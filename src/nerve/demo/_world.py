"""The demo shop's world: products, shoppers' demographics, devices, releases and rhythms.

Plain constants and small pure functions; the simulator draws from them. The numbers are
made up but shaped like a mid-sized sneaker shop: most traffic on phones, an evening peak,
busier weekends, older shoppers who browse carefully but abandon a long checkout.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AGE_GROUPS",
    "CHANNELS",
    "COUNTRIES",
    "HOURLY",
    "PLATFORMS",
    "PRODUCTS",
    "SEARCH_TERMS",
    "WEEKDAY",
    "Country",
    "Product",
    "age_group",
]


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    product_name: str
    category: str
    price: float


def _products() -> tuple[Product, ...]:
    lines = {
        "sneakers": (["Aero Runner", "Street Classic", "Court Low", "Court High", "Canvas Low",
                      "Retro 86", "Skate Pro", "Cloud Knit"], (59.99, 89.99, 119.99, 149.99)),
        "running": (["Tempo", "Trail Blazer", "Marathon Elite", "Daily Trainer", "Sprint Spike"],
                    (79.99, 109.99, 139.99, 179.99)),
        "boots": (["Hiker Mid", "Chelsea", "Work Boot", "Winter Trek"],
                  (99.99, 129.99, 169.99, 189.99)),
        "sandals": (["Slide", "Strap Sandal", "Flip Flop"], (19.99, 29.99, 39.99)),
        "apparel": (["Track Jacket", "Hoodie", "Running Tee", "Shorts", "Rain Shell"],
                    (24.99, 39.99, 59.99, 89.99)),
        "accessories": (["Sport Socks 3-pack", "Laces", "Shoe Cleaner", "Cap", "Backpack"],
                        (7.99, 12.99, 19.99, 49.99)),
    }
    result: list[Product] = []
    number = 1001
    for category, (names, prices) in lines.items():
        for i, name in enumerate(names):
            for generation in (1, 2):
                price = prices[(i + generation) % len(prices)]
                result.append(Product(f"SKU-{number}", f"{name} {generation}", category, price))
                number += 1
    return tuple(result)


#: 60 products; popularity is Zipf-like in this order after a fixed shuffle in the simulator
PRODUCTS = _products()

SEARCH_TERMS = (
    "running shoes", "white sneakers", "trail", "boots", "waterproof", "kids", "sale",
    "black sneakers", "hoodie", "socks", "slides", "marathon", "wide fit", "vegan",
    "high tops", "size 12", "retro", "gift card", "walking shoes", "winter",
)


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    weight: float
    #: offset of local time from UTC in hours (a single typical one; DST ignored)
    utc_offset: int
    locale: str
    #: relative purchase propensity
    buy: float


COUNTRIES = (
    Country("US", 0.38, -5, "en-US", 1.05),
    Country("GB", 0.12, 0, "en-GB", 1.0),
    Country("DE", 0.10, 1, "de-DE", 1.0),
    Country("FR", 0.07, 1, "fr-FR", 0.95),
    Country("CA", 0.06, -5, "en-CA", 1.0),
    Country("BR", 0.07, -3, "pt-BR", 0.75),
    Country("IN", 0.06, 5, "en-IN", 0.6),
    Country("JP", 0.05, 9, "ja-JP", 0.9),
    Country("AU", 0.05, 10, "en-AU", 1.0),
    Country("ES", 0.04, 1, "es-ES", 0.9),
)

#: (label, share of shoppers, youngest, oldest, view->cart factor, checkout completion)
AGE_GROUPS = (
    ("18-24", 0.15, 18, 24, 0.80, 0.74),
    ("25-34", 0.25, 25, 34, 1.00, 0.76),
    ("35-44", 0.20, 35, 44, 1.15, 0.77),
    ("45-54", 0.14, 45, 54, 1.10, 0.74),
    ("55-64", 0.11, 55, 64, 1.05, 0.68),
    # the long multi-step checkout loses many older shoppers: the experiment's reason
    ("65+", 0.15, 65, 86, 1.00, 0.48),
)


def age_group(age: int) -> str:
    """The reporting bracket of an age.

    >>> age_group(17), age_group(30), age_group(70)
    ('18-24', '25-34', '65+')
    """
    for label, _share, _low, high, _cart, _done in AGE_GROUPS:
        if age <= high:
            return label
    return "65+"


#: platform shares by age group: (ios, android, web)
PLATFORMS = {
    "18-24": (0.46, 0.40, 0.14),
    "25-34": (0.42, 0.36, 0.22),
    "35-44": (0.38, 0.34, 0.28),
    "45-54": (0.33, 0.32, 0.35),
    "55-64": (0.27, 0.30, 0.43),
    "65+": (0.22, 0.26, 0.52),
}

#: (model, manufacturer) per platform; web "devices" are (browser, OS) pairs
IOS_DEVICES = (("iPhone16,2", "Apple"), ("iPhone15,3", "Apple"), ("iPhone14,5", "Apple"),
               ("iPhone13,2", "Apple"), ("iPad13,18", "Apple"))
IOS_VERSIONS = ("18.1", "17.6.1", "17.5", "16.7.10")
ANDROID_DEVICES = (("SM-S921B", "samsung"), ("SM-A546B", "samsung"), ("Pixel 8", "Google"),
                   ("Pixel 7a", "Google"), ("2201117TG", "Xiaomi"), ("CPH2451", "OnePlus"))
ANDROID_VERSIONS = ("15", "14", "13", "12")
WEB_CLIENTS = (
    ("Chrome", "131.0.0.0", "Mac OS X", "10.15.7",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("Chrome", "131.0.0.0", "Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("Safari", "18.1", "Mac OS X", "10.15.7",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15"),
    ("Firefox", "133.0", "Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    ("Edge", "131.0.0.0", "Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"),
)

#: marketing channels of sessions: (channel, weight, utm source, utm medium)
CHANNELS = (
    ("direct", 0.34, None, None),
    ("organic_search", 0.22, "google", "organic"),
    ("paid_search", 0.13, "google", "cpc"),
    ("social", 0.11, "instagram", "social"),
    ("email", 0.10, "newsletter", "email"),
    ("referral", 0.05, "sneakerblog", "referral"),
    ("push", 0.05, "app", "push"),
)

#: relative session starts per local hour of day (0..23): quiet nights, lunch and evening peaks
HOURLY = (0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.75, 0.85, 0.90, 0.95,
          1.10, 1.05, 0.90, 0.85, 0.90, 1.00, 1.20, 1.45, 1.55, 1.35, 0.95, 0.55)

#: relative sessions per weekday, Monday first: a shop is busiest at the weekend
WEEKDAY = (0.90, 0.92, 0.95, 0.98, 1.05, 1.20, 1.15)
