"""Cache analysis of status responses (RFC 9111 freshness, intermediary signals)."""

import pytest

from pollwatch.core.cache import ServedBy, Verdict, analyse, freshness, hit_signals, parse_retry_after
from pollwatch.core.observation import Headers

DATE = "Tue, 28 Nov 2026 16:00:00 GMT"
ARRIVED = 1795881600.0  # the same instant


def verdict(status=200, **headers):
    return freshness(Headers.of({k.replace("_", "-"): v for k, v in headers.items()}), status, ARRIVED)


@pytest.mark.parametrize("cc", ["no-store", "no-store, max-age=60"])
def test_no_store_is_never_reusable(cc):
    assert verdict(cache_control=cc)[0] is Verdict.NO_STORE


@pytest.mark.parametrize("cc", ["no-cache", "max-age=0", "s-maxage=0", "max-age=abc"])
def test_revalidated_responses_are_safe(cc):
    assert not verdict(cache_control=cc)[0].reusable


def test_max_age_gives_explicit_freshness():
    assert verdict(cache_control="max-age=30") == (Verdict.FRESH, 30.0)


def test_s_maxage_counts_for_shared_caches():
    assert verdict(cache_control="public, s-maxage=10, max-age=0") == (Verdict.FRESH, 10.0)


def test_expires_after_date_is_fresh():
    assert verdict(expires="Tue, 28 Nov 2026 16:01:00 GMT", date=DATE) == (Verdict.FRESH, 60.0)


@pytest.mark.parametrize("expires", ["0", "-1", DATE])
def test_invalid_or_past_expires_is_already_stale(expires):
    assert not verdict(expires=expires, date=DATE)[0].reusable


def test_max_age_beats_expires():
    assert verdict(cache_control="max-age=0", expires="Tue, 28 Nov 2026 17:00:00 GMT", date=DATE)[0] is Verdict.REVALIDATE


def test_last_modified_without_expiry_is_heuristically_fresh_for_a_200():
    v, lifetime = verdict(last_modified="Tue, 28 Nov 2026 15:50:00 GMT", date=DATE)
    assert v is Verdict.HEURISTIC and lifetime == pytest.approx(60.0)


def test_202_is_not_heuristically_cacheable():
    assert verdict(202, last_modified="Tue, 28 Nov 2026 15:50:00 GMT", date=DATE)[0] is Verdict.NOT_STORED


def test_pragma_no_cache_on_a_response_means_nothing():
    assert verdict(pragma="no-cache", cache_control="max-age=5")[0] is Verdict.FRESH


@pytest.mark.parametrize("headers", [
    {"Cache-Status": "ExampleCDN; hit; ttl=376"},
    {"X-Cache": "HIT"},
    {"X-Cache": "Hit from cloudfront"},
    {"X-Cache": "TCP_MEM_HIT"},
    {"CF-Cache-Status": "STALE"},
    {"X-Cache-Status": "UPDATING"},
    {"X-Cache-Hits": "0, 3"},
    {"Age": "12"},
])
def test_intermediary_hit_signals(headers):
    assert hit_signals(Headers.of(headers))


@pytest.mark.parametrize("headers", [
    {"Cache-Status": "Edge; fwd=uri-miss; stored"},
    {"X-Cache": "MISS"},
    {"CF-Cache-Status": "DYNAMIC"},
    {"X-Cache-Hits": "0"},
    {"Age": "0"},
])
def test_misses_are_not_hits(headers):
    assert not hit_signals(Headers.of(headers))


def test_304_is_served_from_the_client_cache():
    assert analyse(Headers(), 304, ARRIVED).served_by is ServedBy.CLIENT_CACHE


def test_date_lag_is_measured_against_arrival():
    assert analyse(Headers.of({"Date": DATE}), 200, ARRIVED + 9).date_lag == pytest.approx(9)


def test_retry_after_accepts_seconds_and_dates():
    assert parse_retry_after("3", ARRIVED) == 3
    assert parse_retry_after("Tue, 28 Nov 2026 16:00:05 GMT", ARRIVED) == pytest.approx(5)


def test_a_browser_may_reuse_what_shared_caches_may_not():
    assert verdict(cache_control="s-maxage=0, max-age=60") == (Verdict.FRESH, 60.0)


def test_a_response_older_than_its_lifetime_is_stale_on_arrival():
    headers = Headers.of({"Cache-Control": "max-age=30", "Age": "100"})
    analysis = analyse(headers, 200, ARRIVED)
    assert analysis.verdict is Verdict.REVALIDATE and analysis.served_by is ServedBy.SHARED_CACHE


def test_a_young_cached_response_is_still_fresh():
    assert analyse(Headers.of({"Cache-Control": "max-age=30", "Age": "10"}), 200, ARRIVED).verdict is Verdict.FRESH


def test_only_short_header_values_have_their_parse_remembered():
    """Parses are remembered (the same Date and Cache-Control come with every poll), but a huge
    header sent once must not stay in memory after its response."""
    from pollwatch.core import cache

    huge = "max-age=5, " + "x" * 100_000
    assert cache.parse_http_date(DATE) == ARRIVED
    before = (cache._date.cache_info().currsize, cache._directives.cache_info().currsize)
    assert verdict(cache_control=huge) == (Verdict.FRESH, 5.0)
    assert cache.parse_http_date(DATE + " " * 100_000) == ARRIVED
    assert (cache._date.cache_info().currsize, cache._directives.cache_info().currsize) == before
