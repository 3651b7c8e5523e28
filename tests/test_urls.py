"""``[privacy] url_query``: what a page URL keeps of its query string (nerve._urls)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerve._urls import clean_search, clean_url, url_query_setting

EMAIL = "ana.lopez@mailbank.example"
SIGN_IN = (f"https://bank.example/reset?email={EMAIL}&utm_source=news&token=T0K3N"
           "&utm_campaign=spring#access_token=secret")


def test_keep_stores_the_url_as_sent() -> None:
    assert clean_url(SIGN_IN, "keep") == SIGN_IN
    assert clean_search(f"?email={EMAIL}", "keep") == f"?email={EMAIL}"


def test_drop_removes_the_query_string_and_the_fragment() -> None:
    assert clean_url(SIGN_IN, "drop") == "https://bank.example/reset"
    assert clean_search(f"?email={EMAIL}&utm_source=news", "drop") == ""
    # a "?" inside the fragment is the fragment's, gone with it
    assert clean_url("https://b.example/app#/reset?email=x", "drop") == "https://b.example/app"


def test_named_parameters_are_kept_as_sent_and_in_order() -> None:
    keep = url_query_setting(["utm_*", "gclid"])
    assert clean_url(SIGN_IN, keep) == (
        "https://bank.example/reset?utm_source=news&utm_campaign=spring")
    assert clean_search(f"?gclid=abc&email={EMAIL}&utm_medium=mail", keep) == (
        "?gclid=abc&utm_medium=mail")
    # nothing named in it: no "?" left
    assert clean_url(f"https://bank.example/?email={EMAIL}", keep) == "https://bank.example/"
    assert clean_search(f"?email={EMAIL}", keep) == ""


def test_names_match_whatever_their_case_or_percent_encoding() -> None:
    keep = url_query_setting(["UTM_*", "gclid"])
    assert clean_url("https://b.example/?Utm_Source=a&utm%5Fmedium=b&GCLID=c&x=1", keep) == (
        "https://b.example/?Utm_Source=a&utm%5Fmedium=b&GCLID=c")
    # a prefix is a prefix: "utm" alone is not a utm_ parameter
    assert clean_url("https://b.example/?utm=1", keep) == "https://b.example/"


@pytest.mark.parametrize(("value", "message"), [
    ("dorp", "got 'dorp'; did you mean 'drop'?"),
    ("utm_*", """got 'utm_*' (a parameter's name goes in a list: ["utm_*"])"""),
    ([], 'an empty list keeps no parameter; write "drop" for that'),
    (["utm_*", "a b"], "got 'a b' in the list"),
    (["utm*x"], "got 'utm*x' in the list"),
    (["email="], "got 'email=' in the list"),
    (42, "got 42"),
    (True, "got True"),
])
def test_a_wrong_setting_says_what_is_accepted(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="expected \"keep\", \"drop\" or a list") as info:
        url_query_setting(value)
    assert message in str(info.value)


_NAMES = st.sampled_from(["utm_source", "utm_medium", "gclid", "email", "q", "token", "to"])
_PARAMS = st.lists(st.tuples(_NAMES, st.text("abc@.%+-_", max_size=8)), max_size=6)


@given(params=_PARAMS, fragment=st.sampled_from(["", "#top", "#/r?email=x"]))
def test_no_parameter_outside_the_list_is_ever_kept(params: list[tuple[str, str]],
                                                     fragment: str) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    url = f"https://bank.example/p?{query}{fragment}"
    keep = url_query_setting(["utm_*", "gclid"])
    cleaned = clean_url(url, keep)
    assert "#" not in cleaned
    base, _, kept = cleaned.partition("?")
    assert base == "https://bank.example/p"
    wanted = [(k, v) for k, v in params if k.startswith("utm_") or k == "gclid"]
    assert [p.partition("=")[::2] for p in kept.split("&") if p] == wanted
    assert parse_qsl(kept) == parse_qsl("&".join(f"{k}={v}" for k, v in wanted))
    dropped = clean_url(url, "drop")
    assert dropped == "https://bank.example/p"
