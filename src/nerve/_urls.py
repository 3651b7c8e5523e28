"""Query strings of page URLs, as ``[privacy] url_query`` keeps them (docs/privacy.md).

Personal data travels in URLs: a sign-in link's ``?email=``, a reset token, a site
search for someone's name. The setting says what of a URL's query string is stored:

- ``"keep"`` (the default): the URL as sent;
- ``"drop"``: no query string and no fragment;
- a list of parameter names (``["utm_*", "gclid"]``, ``*`` at the end for a prefix,
  compared case-insensitively): only those parameters, as sent and in their order; the
  fragment goes.

Pure functions on text, no URL parser: a URL is stored as the client wrote it, minus
what the setting removes (``urllib.parse`` would re-encode and reorder). Cached, as
``truncate_ip`` is: analytics.js sends the page's URL with every event of a page view,
so a batch repeats a few URLs (the raw URLs stay in this process's memory only).
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit

__all__ = ["UrlQuery", "clean_search", "clean_url", "url_query_setting", "webhook_url"]

#: ``"keep"``, ``"drop"``, or the names (lower case) of the parameters kept
UrlQuery = str | tuple[str, ...]
#: a parameter's name in the setting: no separator of a query string, ``*`` only last
_NAME = re.compile(r"[^\s&=?#*]+\*?")


def url_query_setting(value: Any) -> UrlQuery:
    """The setting's value as the collector uses it; ValueError saying the accepted form.

    >>> url_query_setting(["utm_*", "GCLID"]), url_query_setting("drop")
    (('utm_*', 'gclid'), 'drop')
    """
    accepted = ('expected "keep", "drop" or a list of the query parameters to keep '
                '(["utm_*", "gclid"])')
    if value in ("keep", "drop"):
        return str(value)
    if isinstance(value, str):
        close = difflib.get_close_matches(value, ["keep", "drop"], n=1)
        hint = (f"; did you mean {close[0]!r}?" if close
                else f' (a parameter\'s name goes in a list: ["{value}"])'
                if _NAME.fullmatch(value) else "")
        raise ValueError(f"{accepted}, got {value!r}{hint}")
    if not isinstance(value, list):
        raise ValueError(f"{accepted}, got {value!r}")
    if not value:
        raise ValueError(f'{accepted}, got []: an empty list keeps no parameter; write '
                         '"drop" for that')
    for name in value:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{accepted}, got {name!r} in the list: a parameter's name "
                             "without spaces, &, =, ? or #, and * only at its end (a prefix)")
    return tuple(name.lower() for name in value)


@functools.lru_cache(maxsize=16384)
def clean_url(url: str, keep: UrlQuery) -> str:
    """``url`` with its query string as ``keep`` says, and no fragment (unless ``keep`` is
    ``"keep"``).

    >>> clean_url("https://b.example/r?email=a%40b.c&utm_source=mail#t=1", ("utm_*",))
    'https://b.example/r?utm_source=mail'
    >>> clean_url("https://b.example/r?email=a%40b.c#t=1", "drop")
    'https://b.example/r'
    """
    if keep == "keep" or ("?" not in url and "#" not in url):
        return url
    base, _, query = url.partition("#")[0].partition("?")
    kept = _kept(query, keep) if isinstance(keep, tuple) else ""
    return f"{base}?{kept}" if kept else base


@functools.lru_cache(maxsize=16384)
def clean_search(search: str, keep: UrlQuery) -> str:
    """A page's ``search`` (its query string, ``?`` first) as ``keep`` says: ``""`` when
    nothing is kept, as a browser's ``location.search`` is for a URL without one.

    >>> clean_search("?q=ana%40b.c&utm_medium=mail", ("utm_medium",))
    '?utm_medium=mail'
    """
    if keep == "keep":
        return search
    query = search.partition("#")[0]
    kept = _kept(query.removeprefix("?"), keep) if isinstance(keep, tuple) else ""
    return f"?{kept}" if kept else ""


def _kept(query: str, names: tuple[str, ...]) -> str:
    return "&".join(part for part in query.split("&")
                    if part and _named(part.partition("=")[0], names))


def _named(name: str, names: tuple[str, ...]) -> bool:
    name = unquote_plus(name).lower()
    return any(name.startswith(n[:-1]) if n.endswith("*") else name == n for n in names)


def webhook_url(value: Any) -> str:
    """An http(s) URL with a host, as a webhook is POSTed to; ValueError saying the form.

    Anything else was accepted and every alert then failed to send, logged where nobody
    looks, while the checks found problems (``hooks.slack.com/...`` without its scheme).

    >>> webhook_url("https://hooks.slack.com/services/T0/B0/X")
    'https://hooks.slack.com/services/T0/B0/X'
    """
    form = "expected an http:// or https:// URL, e.g. https://hooks.slack.com/services/..."
    if not isinstance(value, str):
        raise ValueError(f"{form}, got {value!r}")
    try:
        parts = urlsplit(value)
        good = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 host
        good = False
    if not good or any(c.isspace() for c in value):
        raise ValueError(f"{form}, got {value!r}")
    return value
