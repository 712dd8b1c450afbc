"""Token-bucket arithmetic, the in-memory limiter, and which buckets a request draws from."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faena.adapters.memory.ratelimit import MemoryRateLimiter
from faena.domain.auth import Principal
from faena.domain.errors import RateLimited
from faena.domain.ratelimit import Bucket, retry_after_header, take
from faena.services.ratelimit import RateLimits, RateLimitSettings, RequestClass

rates = st.floats(min_value=0.01, max_value=1000, allow_nan=False)
bursts = st.integers(min_value=1, max_value=10_000).map(float)
steps = st.lists(
    st.tuples(st.floats(min_value=0, max_value=120, allow_nan=False), st.sampled_from([0, 1, 2])),
    max_size=60,
)


@given(rate=rates, burst=bursts, steps=steps)
def test_a_bucket_never_holds_more_than_its_burst_nor_less_than_nothing(
    rate: float, burst: float, steps: list[tuple[float, int]]
) -> None:
    bucket, now = None, 1000.0
    for gap, cost in steps:
        now += gap
        bucket, decision = take(bucket, now, rate, burst, cost)
        assert 0 <= bucket.tokens <= burst
        assert decision.remaining == math.floor(bucket.tokens)
        assert decision.allowed == (decision.retry_after_s == 0)


@given(rate=rates, burst=bursts, gaps=st.lists(st.floats(0, 5, allow_nan=False), max_size=200))
def test_allowed_takes_never_exceed_burst_plus_what_refilled(
    rate: float, burst: float, gaps: list[float]
) -> None:
    """Over any run of requests, at most ``burst + rate * elapsed`` are allowed."""
    bucket, now, start, allowed = None, 0.0, 0.0, 0
    for gap in gaps:
        now += gap
        bucket, decision = take(bucket, now, rate, burst)
        allowed += decision.allowed
    assert allowed <= burst + rate * (now - start) + 1e-6


@given(
    rate=st.floats(min_value=1 / 86_400, max_value=1000), burst=bursts, tokens=st.floats(0, 0.999)
)
def test_a_refused_take_is_allowed_after_its_retry_after_header(
    rate: float, burst: float, tokens: float
) -> None:
    bucket, decision = take(Bucket(tokens, 50.0), 50.0, rate, burst)
    assert not decision.allowed
    assert bucket.tokens == tokens  # a refusal costs nothing
    # a client that waits the Retry-After it was given (whole seconds) gets in
    _, later = take(bucket, 50.0 + retry_after_header(decision.retry_after_s), rate, burst)
    assert later.allowed


def test_a_clock_going_backwards_refills_nothing() -> None:
    bucket, _ = take(None, 100.0, 1.0, 10.0, cost=10)
    bucket, decision = take(bucket, 90.0, 1.0, 10.0)
    assert not decision.allowed and bucket.tokens == 0


def test_a_cost_of_zero_only_looks() -> None:
    bucket, decision = take(Bucket(3.5, 0.0), 0.0, 1.0, 10.0, cost=0)
    assert decision.allowed and decision.remaining == 3 and bucket.tokens == 3.5


@settings(max_examples=50)
@given(seconds=st.floats(min_value=0, allow_nan=False))
def test_retry_after_is_a_whole_number_of_seconds_at_least_one(seconds: float) -> None:
    value = retry_after_header(seconds)
    assert isinstance(value, int) and 1 <= value <= 86_400
    assert value >= min(seconds, 86_400)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_memory_limiter_allows_a_burst_then_one_per_refill() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    assert [limiter.take_now("k", 1.0, 3.0).allowed for _ in range(4)] == [1, 1, 1, 0]
    assert limiter.take_now("other", 1.0, 3.0).allowed  # buckets are per key
    clock.now = 1.0
    assert limiter.take_now("k", 1.0, 3.0).allowed
    assert not limiter.take_now("k", 1.0, 3.0).allowed


def test_the_memory_limiter_forgets_full_buckets_rather_than_grow() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock, max_buckets=100)
    for i in range(100):
        limiter.take_now(f"k{i}", 1.0, 5.0)
    clock.now = 10.0  # every bucket is full again
    limiter.take_now("new", 1.0, 5.0)
    assert len(limiter) == 1
    for i in range(300):  # a flood of new keys, none full yet
        limiter.take_now(f"f{i}", 1.0, 5.0)
    assert len(limiter) <= 100


def principal(key_id: str = "k1", rate_limit: int | None = None) -> Principal:
    return Principal("default", key_id, "fk_x", ("admin",), rate_limit=rate_limit)


def limits(**given: int) -> RateLimits:
    return RateLimits(MemoryRateLimiter(), RateLimitSettings(**given))  # type: ignore[arg-type]


async def refused_after(n: int, call: object) -> RateLimited:
    for _ in range(n):
        await call()  # type: ignore[operator]
    with pytest.raises(RateLimited) as refused:
        await call()  # type: ignore[operator]
    return refused.value


def test_requests_are_classified_health_bulk_or_default() -> None:
    assert RateLimits.classify("GET", "/healthz") is RequestClass.HEALTH
    assert RateLimits.classify("GET", "/metrics") is RequestClass.HEALTH
    assert RateLimits.classify("POST", "/v1/jobs/batch") is RequestClass.BULK
    assert RateLimits.classify("GET", "/v1/jobs/batch") is RequestClass.DEFAULT
    assert RateLimits.classify("POST", "/v1/jobs") is RequestClass.DEFAULT
    assert RateLimits.classify("POST", "/v1/workflows/intake/runs/batch") is RequestClass.BULK
    assert RateLimits.classify("POST", "/v1/workflows/intake/runs") is RequestClass.DEFAULT


async def test_a_key_is_refused_past_its_limit_with_a_retry_after() -> None:
    rl = limits(per_minute=5)
    refused = await refused_after(5, lambda: rl.after_auth(principal(), "GET", "/v1/x", "1.2.3.4"))
    assert refused.retry_after_s == 12  # one token every 60/5 s
    assert refused.limit == 5
    assert "5 requests per minute for this API key" in refused.message
    await rl.after_auth(principal("k2"), "GET", "/v1/x", "5.6.7.8")  # another key, address


async def test_the_address_bucket_holds_across_keys() -> None:
    rl = limits(per_minute=3)
    for i in range(3):
        await rl.after_auth(principal(f"k{i}"), "GET", "/v1/x", "1.2.3.4")
    with pytest.raises(RateLimited) as refused:
        await rl.after_auth(principal("k9"), "GET", "/v1/x", "1.2.3.4")
    assert "this client address" in refused.value.message


async def test_a_keys_own_limit_replaces_the_default_for_key_and_address() -> None:
    rl = limits(per_minute=2)
    raised = principal(rate_limit=50)
    for _ in range(50):
        await rl.after_auth(raised, "GET", "/v1/x", "1.2.3.4")
    with pytest.raises(RateLimited):
        await rl.after_auth(raised, "GET", "/v1/x", "1.2.3.4")
    # the default-sized address bucket was not drawn from
    await rl.after_auth(principal("plain"), "GET", "/v1/x", "1.2.3.4")


async def test_bulk_requests_have_their_own_smaller_bucket() -> None:
    rl = limits(per_minute=100, bulk_per_minute=2)
    refused = await refused_after(
        2, lambda: rl.after_auth(principal(), "POST", "/v1/jobs/batch", "1.2.3.4")
    )
    assert "bulk" in refused.message
    await rl.after_auth(principal(), "POST", "/v1/jobs", "1.2.3.4")  # the default still has room
    assert rl.counts.refused == {"bulk": 1}


async def test_a_raised_key_gets_a_tenth_of_its_limit_for_bulk() -> None:
    rl = limits(bulk_per_minute=1)
    raised = principal(rate_limit=30)
    await refused_after(3, lambda: rl.after_auth(raised, "POST", "/v1/jobs/batch", "1.2.3.4"))


async def test_health_checks_draw_from_their_own_address_bucket() -> None:
    rl = limits(per_minute=1, health_per_minute=3)
    refused = await refused_after(3, lambda: rl.admit("GET", "/healthz", "1.2.3.4", False))
    assert refused.limit == 3
    assert await rl.admit("GET", "/ui/", "1.2.3.4", False)  # the default bucket is untouched


async def test_a_request_with_a_key_is_left_to_the_authenticator() -> None:
    rl = limits(per_minute=1)
    for _ in range(5):
        assert await rl.admit("GET", "/v1/jobs", "1.2.3.4", True) is False
    assert await rl.admit("GET", "/openapi.json", "1.2.3.4", True) is True
    with pytest.raises(RateLimited):  # no key: the address pays before the app
        await rl.admit("GET", "/v1/jobs", "1.2.3.4", False)


async def test_failed_authentications_block_the_address_even_for_valid_keys() -> None:
    rl = limits(auth_failures_per_minute=3)
    for _ in range(3):
        await rl.auth_failed("6.6.6.6")
    with pytest.raises(RateLimited) as refused:
        await rl.admit("GET", "/v1/jobs", "6.6.6.6", True)
    assert "failed authentications" in refused.value.message
    assert refused.value.retry_after_s == 20
    with pytest.raises(RateLimited):
        await rl.auth_failed("6.6.6.6")
    assert await rl.admit("GET", "/v1/jobs", "7.7.7.7", True) is False  # others are not


def test_the_client_is_the_peer_unless_it_is_a_trusted_proxy() -> None:
    plain = limits()
    assert plain.client_ip("10.0.0.1", b"1.1.1.1") == "10.0.0.1"
    assert plain.client_ip(None, None) == "unknown"
    rl = RateLimits(MemoryRateLimiter(), RateLimitSettings(trusted_proxies=("10.0.0.0/8",)))
    assert rl.client_ip("10.0.0.1", b"1.1.1.1") == "1.1.1.1"
    assert rl.client_ip("10.0.0.1", b"9.9.9.9, 1.1.1.1, 10.0.0.7") == "1.1.1.1"
    assert rl.client_ip("10.0.0.1", b"not-an-ip, 1.1.1.1") == "1.1.1.1"
    assert rl.client_ip("10.0.0.1", b"1.1.1.1, garbage") == "10.0.0.1"
    assert rl.client_ip("192.168.1.1", b"1.1.1.1") == "192.168.1.1"  # not a trusted proxy
    assert rl.client_ip("10.0.0.1", None) == "10.0.0.1"


def test_a_bad_trusted_proxy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'nope' is not an IP address or network"):
        RateLimits(MemoryRateLimiter(), RateLimitSettings(trusted_proxies=("nope",)))


@given(rate=rates, burst=bursts, steps=steps)
def test_the_memory_limiter_decides_as_the_domain_rules_do(
    rate: float, burst: float, steps: list[tuple[float, int]]
) -> None:
    clock = Clock()
    clock.now = 1000.0
    limiter = MemoryRateLimiter(clock=clock)
    bucket = None
    for gap, cost in steps:
        clock.now += gap
        bucket, expected = take(bucket, clock.now, rate, burst, cost)
        got = limiter.take_now("k", rate, burst, cost)
        assert got.allowed == expected.allowed
        assert got.remaining == expected.remaining
        assert math.isclose(got.retry_after_s, expected.retry_after_s, abs_tol=1e-9)


def test_the_settings_read_the_rate_limit_variables() -> None:
    from faena.bootstrap import build_rate_limits
    from faena.config import Settings
    from faena.domain.errors import ValidationError

    env = {
        "FAENA_RATE_LIMIT": "7",
        "FAENA_RATE_LIMIT_BULK": "3",
        "FAENA_RATE_LIMIT_HEALTH": "9",
        "FAENA_RATE_LIMIT_AUTH_FAILURES": "2",
        "FAENA_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
    }
    built = build_rate_limits(Settings.from_env(env))
    assert isinstance(built, RateLimits)
    assert built.settings == RateLimitSettings(7, 3, 9, 2, ("10.0.0.0/8", "::1"))
    assert isinstance(built.limiter, MemoryRateLimiter)
    assert build_rate_limits(Settings.from_env({"FAENA_RATE_LIMITS": "off"})) is None
    with pytest.raises(ValidationError, match="'nope' is not an IP address"):
        Settings.from_env({"FAENA_TRUSTED_PROXIES": "nope"})
    with pytest.raises(ValidationError, match="rate_limit must be between"):
        Settings.from_env({"FAENA_RATE_LIMIT": "0"})
