"""The pure domain: URL, alias and expiry validation, code schemes, delete tokens, click batches."""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.errors import Forbidden, Gone, InvalidInput
from shortener import domain
from shortener.domain import (
    ALPHABET,
    CounterObfuscator,
    Link,
    LinkClicked,
    hash_code,
    is_code_shaped,
    random_code,
    validate_alias,
    validate_expiry,
    validate_url,
)

OWN = frozenset({"sho.rt", "localhost", "127.0.0.1"})


def refused(fn, *args) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        fn(*args)
    return info.value


# --- URLs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://example.com", "https://example.com/a/b?q=1#f", "HTTPS://Example.com:8443/x"])
def test_http_and_https_urls_are_accepted_unchanged(url):
    assert validate_url(url, OWN) == url


@pytest.mark.parametrize(("url", "scheme"), [
    ("javascript:alert(1)", "javascript"),
    ("data:text/html;base64,PHNjcmlwdD4=", "data"),
    ("ftp://example.com/file", "ftp"),
    ("JavaScript://example.com/%0aalert(1)", "javascript"),
    ("//example.com/no-scheme", "none"),
])
def test_other_schemes_are_refused(url, scheme):
    err = refused(validate_url, url, OWN)
    assert err.code == "url_scheme"
    assert repr(scheme) in err.message


@pytest.mark.parametrize("url", ["http://user:pw@example.com/", "https://user@example.com/", "http://:pw@example.com/"])
def test_credentials_are_refused(url):
    assert refused(validate_url, url, OWN).code == "url_credentials"


@pytest.mark.parametrize("url", ["http://sho.rt/abc", "https://LOCALHOST:8080/x", "http://localhost./x",
                                 "http://127.0.0.1/abc"])
def test_links_to_the_shortener_itself_are_forbidden(url):
    with pytest.raises(Forbidden) as info:
        validate_url(url, OWN)
    assert info.value.code == "url_self"


@pytest.mark.parametrize("url", ["http://ＬＯＣＡＬＨＯＳＴ/x", "http://sho.rt\u3002/x"])
def test_unicode_spellings_of_the_own_host_are_forbidden(url):
    with pytest.raises(Forbidden) as info:
        validate_url(url, OWN)
    assert info.value.code == "url_self"


def test_url_at_the_length_limit_is_accepted():
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert validate_url(url, OWN) == url


def test_url_over_the_length_limit_is_refused():
    url = "https://example.com/" + "a" * (2049 - len("https://example.com/"))
    err = refused(validate_url, url, OWN)
    assert err.code == "url_too_long"
    assert "2049" in err.message and "2048" in err.message


def test_length_limit_is_a_parameter():
    assert refused(validate_url, "https://example.com/" + "a" * 50, OWN, 64).code == "url_too_long"


def test_length_limit_holds_for_the_stored_ascii_url():
    url = "http://a.com/" + "é" * 2000  # 2013 characters: under the limit as typed
    try:
        stored = validate_url(url, OWN)
    except InvalidInput as err:
        assert err.code == "url_too_long"
    else:
        assert len(stored) <= 2048


@pytest.mark.parametrize("url", ["http://example.com/a b", "http://example.com/\ta", "http://example.com/\n",
                                 "http://example.com/\x00", "http://example.com/\x7f", " http://example.com/"])
def test_whitespace_and_control_characters_are_refused(url):
    err = refused(validate_url, url, OWN)
    assert err.code == "url_invalid"
    assert "whitespace" in err.message


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://example.com:port/", "http://example.com:-1/"])
def test_bad_port_is_refused(url):
    assert refused(validate_url, url, OWN).code == "url_invalid"


@pytest.mark.parametrize("url", ["http:///path", "https://:443/"])
def test_url_without_host_is_refused(url):
    err = refused(validate_url, url, OWN)
    assert err.code == "url_invalid"
    assert "no host" in err.message


def test_non_ascii_host_and_path_become_an_ascii_url():
    converted = validate_url("http://bücher.example:8443/straße?q=ü#frag", OWN)
    assert converted == "http://xn--bcher-kva.example:8443/stra%C3%9Fe?q=%C3%BC#frag"


def test_existing_percent_escapes_are_kept_when_converting():
    assert validate_url("https://example.com/%20é?a=%41&b=ü", OWN) == "https://example.com/%20%C3%A9?a=%41&b=%C3%BC"


def test_non_ascii_path_on_an_ipv6_host_keeps_the_brackets():
    assert validate_url("http://[2001:db8::1]:8080/é", OWN) == "http://[2001:db8::1]:8080/%C3%A9"


def test_converted_url_never_contains_whitespace():
    try:
        converted = validate_url("http://exa\u00a0mple.com/", OWN)
    except InvalidInput:
        return
    assert " " not in converted


# --- aliases and expiry ----------------------------------------------------------------------

@pytest.mark.parametrize("alias", ["abc", "a" * 32, "My_Link-2024", "___", "123"])
def test_valid_aliases_are_accepted(alias):
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias", ["ab", "a" * 33, "a b", "a.b", "a/b", "héllo", "", "abc!"])
def test_malformed_aliases_are_refused(alias):
    assert refused(validate_alias, alias).code == "alias_invalid"


@pytest.mark.parametrize("alias", ["api", "API", "Healthz", "metrics", "Docs", "admin", "STATUS"])
def test_reserved_aliases_are_refused_whatever_the_case(alias):
    err = refused(validate_alias, alias)
    assert err.code == "alias_reserved"
    assert alias in err.message


@pytest.mark.parametrize("expires_in", [None, timedelta(seconds=1), timedelta(days=3650)])
def test_expiry_within_bounds_is_accepted(expires_in):
    assert validate_expiry(expires_in) == expires_in


@pytest.mark.parametrize("expires_in", [timedelta(0), timedelta(milliseconds=999), timedelta(seconds=-5),
                                        timedelta(days=3650, seconds=1)])
def test_expiry_out_of_bounds_is_refused(expires_in):
    assert refused(validate_expiry, expires_in).code == "expiry_invalid"


def test_link_past_its_expiry_is_gone():
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    link = Link("abc1234", "https://example.com/", now - timedelta(days=1), expires_at=now)
    assert link.expired(now) and not link.expired(now - timedelta(seconds=1))
    with pytest.raises(Gone) as info:
        link.require_live(now)
    assert info.value.code == "link_expired"


# --- code schemes ----------------------------------------------------------------------------

def test_hash_code_is_deterministic():
    assert hash_code("https://example.com/", 0) == hash_code("https://example.com/", 0)


def test_hash_code_is_seven_characters_of_the_alphabet():
    for i in range(200):
        code = hash_code(f"https://example.com/{i}", 0)
        assert len(code) == 7 and set(code) <= set(ALPHABET)


def test_hash_code_length_is_a_parameter():
    assert len(hash_code("https://example.com/", 0, length=10)) == 10


def test_different_salts_give_different_codes():
    codes = {hash_code("https://example.com/", salt) for salt in range(8)}
    assert len(codes) == 8


def test_base62_pads_to_the_length():
    assert domain.base62(0, 7) == "0000000"
    assert domain.base62(61, 3) == "00z"
    assert domain.base62(62**7 - 1, 7) == "zzzzzzz"


def test_counter_obfuscator_is_a_bijection_on_a_sample():
    obf = CounterObfuscator(b"secret")
    codes = {obf.code(n) for n in range(50_000)}
    assert len(codes) == 50_000


def test_counter_obfuscator_codes_are_of_the_code_length():
    obf = CounterObfuscator(b"secret", length=5)
    assert all(len(obf.code(n)) == 5 and set(obf.code(n)) <= set(ALPHABET) for n in range(1000))


@settings(max_examples=300, deadline=None)
@given(length=st.integers(5, 12), data=st.data())
def test_counter_obfuscator_maps_distinct_counters_to_distinct_values_in_range(length, data):
    obf = CounterObfuscator(b"property-secret", length)
    a = data.draw(st.integers(0, 62**length - 1), label="a")
    b = data.draw(st.integers(0, 62**length - 1).filter(lambda x: x != a), label="b")
    pa, pb = obf.permute(a), obf.permute(b)
    assert pa != pb
    assert 0 <= pa < 62**length and 0 <= pb < 62**length


@pytest.mark.parametrize("n", [-1, 62**7])
def test_counter_obfuscator_refuses_counters_outside_its_range(n):
    with pytest.raises(ValueError):
        CounterObfuscator(b"secret").permute(n)


def test_consecutive_counters_do_not_give_consecutive_codes():
    obf = CounterObfuscator(b"secret")
    values = [obf.permute(n) for n in range(1001)]
    assert sum(1 for a, b in zip(values, values[1:]) if b == a + 1) == 0
    codes = [obf.code(n) for n in range(1000)]
    assert codes != sorted(codes)


def test_counter_obfuscator_depends_on_the_secret():
    assert [CounterObfuscator(b"one").code(n) for n in range(10)] != [CounterObfuscator(b"two").code(n) for n in range(10)]


def test_random_code_shape():
    assert len(random_code()) == 7
    assert len(random_code(12)) == 12
    assert set("".join(random_code() for _ in range(200))) <= set(ALPHABET)
    assert len({random_code() for _ in range(200)}) == 200


# --- delete tokens, code shape, click batches ------------------------------------------------

def test_delete_token_matches_its_own_digest_only():
    token = domain.new_delete_token()
    digest = domain.token_digest(token)
    assert len(token) >= 32 and set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert domain.token_matches(token, digest)
    assert not domain.token_matches(token + "x", digest)
    assert not domain.token_matches(token, None)


def test_delete_tokens_are_unique():
    assert len({domain.new_delete_token() for _ in range(100)}) == 100


def test_url_digest_is_a_sha256_of_the_url():
    assert len(domain.url_digest("https://example.com/")) == 32
    assert domain.url_digest("https://example.com/") != domain.url_digest("https://example.com")


@pytest.mark.parametrize(("segment", "shaped"), [
    ("abc1234", True), ("my-alias_1", True), ("abc", True),
    ("ab", False), ("a" * 33, False), ("healthz", False), ("HEALTHZ", False), ("metrics", False),
    ("openapi.json", False), ("favicon.ico", False), ("a/b", False), ("", False), ("api", False),
])
def test_is_code_shaped(segment, shaped):
    assert is_code_shaped(segment) is shaped


def test_link_clicked_from_json_drops_non_positive_counts():
    batch = LinkClicked.from_json({"batch_id": "b1", "instance": "i1", "counts": {"a": 3, "b": 0, "c": -2, "d": "4"}})
    assert batch.counts == {"a": 3, "d": 4}
    assert (batch.batch_id, batch.instance) == ("b1", "i1")


def test_link_clicked_round_trips_through_json():
    batch = LinkClicked("b1", "i1", {"abc1234": 5})
    assert LinkClicked.from_json(batch.to_json()) == batch
