"""Which token buckets a request draws from, and the refusal when one is empty.

Three classes of request (issue 6):

- **health** (``/healthz``, ``/readyz``, ``/metrics``): one bucket per client address, 1,000 a
  minute by default, so probes and scrapers never compete with API calls;
- **bulk** (``POST /v1/jobs/batch``, ``POST /v1/workflows/{name}/runs/batch``): one bucket per
  API key, 10 a minute;
- **everything else**: a bucket per API key *and* one per client address, 100 a minute each;
  both must allow.

A key's own ``rate_limit`` replaces the default for it (bulk scales with it, a tenth, unless the
key has its own ``rate_limit_bulk``); its requests then draw from a per-address bucket of that
size too, so a raised key is not held back by the default per-address bucket. A key with its own
``rate_limit_health`` presented to a health path draws from a bucket of its own of that size
instead of the address's health bucket (a monitoring key of a busy prober). Failed
authentications (a key presented and refused) draw from a per-address bucket of their own (20 a
minute); while it is empty, every request from that address that presents a key is refused with
429, valid key or not.

The middleware asks :meth:`RateLimits.admit` before the app; the authenticator asks
:meth:`RateLimits.after_auth` or :meth:`RateLimits.auth_failed`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from faena.domain.auth import Principal
from faena.domain.errors import RateLimited
from faena.domain.ratelimit import Decision, retry_after_header, wait_s
from faena.ports.ratelimit import LocalRateLimiter, RateLimiter

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
BULK_ROUTES = frozenset({("POST", "/v1/jobs/batch")})
BULK_RUNS = ("/v1/workflows/", "/runs/batch")  # POST /v1/workflows/{name}/runs/batch
# /v1 routes that take no API key (a webhook's token is in its path).
UNAUTHENTICATED_PREFIXES = ("/v1/hooks/",)
BULK_SHARE = 10  # a key's bulk limit is its own limit divided by this
UNKNOWN_CLIENT = "unknown"
MAX_TRUST_CACHE = 4096


class RequestClass(StrEnum):
    HEALTH = "health"
    BULK = "bulk"
    DEFAULT = "default"


def is_bulk(method: str, path: str) -> bool:
    if (method, path) in BULK_ROUTES:
        return True
    prefix, suffix = BULK_RUNS
    return method == "POST" and path.startswith(prefix) and path.endswith(suffix)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Requests per minute for each bucket; ``trusted_proxies`` are addresses or networks whose
    ``X-Forwarded-For`` is believed."""

    per_minute: int = 100
    bulk_per_minute: int = 10
    health_per_minute: int = 1000
    auth_failures_per_minute: int = 20
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("per_minute", "bulk_per_minute", "health_per_minute"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.auth_failures_per_minute < 1:
            raise ValueError("auth_failures_per_minute must be at least 1")


@dataclass(slots=True)
class RateLimitCounts:
    """Refusals by bucket, for the metrics."""

    refused: dict[str, int] = field(default_factory=dict)

    def add(self, bucket: str) -> None:
        self.refused[bucket] = self.refused.get(bucket, 0) + 1


def parse_networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``FAENA_TRUSTED_PROXIES`` entries (``10.0.0.1``, ``10.0.0.0/8``, ``::1``); ValueError
    naming the bad one."""
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {entry!r} is not an IP address or network") from None
    return tuple(found)


class RateLimits:
    def __init__(self, limiter: RateLimiter, settings: RateLimitSettings | None = None) -> None:
        self.limiter = limiter
        self.settings = settings or RateLimitSettings()
        self.counts = RateLimitCounts()
        self._local = limiter if isinstance(limiter, LocalRateLimiter) else None
        self._proxies = parse_networks(self.settings.trusted_proxies)
        self._trust: dict[str, bool] = {}

    # -- the client's address ------------------------------------------------------------------

    def client_ip(self, peer: str | None, forwarded_for: bytes | None) -> str:
        """The socket peer; behind a trusted proxy, the right-most address of
        ``X-Forwarded-For`` that is not itself a trusted proxy."""
        if peer is None:
            return UNKNOWN_CLIENT
        if not self._proxies or forwarded_for is None or not self._trusted(peer):
            return peer
        hops = forwarded_for.decode("latin-1").split(",")
        for hop in reversed(hops):
            address = hop.strip()
            try:
                ipaddress.ip_address(address)
            except ValueError:
                return peer  # a hop we cannot read: trust nothing to its left
            if not self._trusted(address):
                return address
        return hops[0].strip()

    def _trusted(self, address: str) -> bool:
        known = self._trust.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = any(ip in network for network in self._proxies)
            except ValueError:
                known = False
            if len(self._trust) >= MAX_TRUST_CACHE:
                self._trust.clear()
            self._trust[address] = known
        return known

    # -- the three moments of a request ---------------------------------------------------------

    @staticmethod
    def classify(method: str, path: str) -> RequestClass:
        if path in HEALTH_PATHS:
            return RequestClass.HEALTH
        if is_bulk(method, path):
            return RequestClass.BULK
        return RequestClass.DEFAULT

    async def admit(
        self, method: str, path: str, ip: str, has_key: bool, health_key: Principal | None = None
    ) -> bool:
        """Before the app: charge what can be charged without knowing the key. True when the
        request has been charged; False when the authenticator will charge it (it presents a
        key to a route that authenticates). ``health_key``: the valid key a health request
        presents, if any. Raises RateLimited."""
        s = self.settings
        if path in HEALTH_PATHS:
            if health_key is not None and health_key.rate_limit_health:
                limit = health_key.rate_limit_health
                bucket = "hk:" + health_key.key_id
                await self._charge("health", bucket, limit, "health checks of this API key")
                return True
            await self._charge("health", "h:" + ip, s.health_per_minute, "this client address")
            return True
        if has_key and path.startswith("/v1/") and not path.startswith(UNAUTHENTICATED_PREFIXES):
            looked = await self._take("af:" + ip, s.auth_failures_per_minute, 0.0)
            if looked.remaining < 1:
                self._refuse_auth_failures(ip, looked)
            return False
        await self._charge("ip", "ip:" + ip, s.per_minute, "this client address")
        return True

    async def after_auth(self, principal: Principal, method: str, path: str, ip: str) -> None:
        """After a key was accepted: its own bucket (bulk or not) and its client address's."""
        s = self.settings
        limit = principal.rate_limit or s.per_minute
        if is_bulk(method, path):
            if principal.rate_limit_bulk:
                bulk = principal.rate_limit_bulk
            elif principal.rate_limit:
                bulk = max(1, limit // BULK_SHARE)
            else:
                bulk = s.bulk_per_minute
            await self._charge("bulk", "kb:" + principal.key_id, bulk, "bulk requests of this key")
        else:
            await self._charge("key", "k:" + principal.key_id, limit, "this API key")
        ip_bucket = "ip:" + ip if limit == s.per_minute else f"ip:{ip}:{limit}"
        await self._charge("ip", ip_bucket, limit, "this client address")

    async def check_auth_failures(self, ip: str) -> None:
        """Raise RateLimited while ``ip`` has no failed authentication left: for a caller that
        does not pass :meth:`admit` (a WebSocket, ``WS /v1/events``), before its key is read."""
        looked = await self._take("af:" + ip, self.settings.auth_failures_per_minute, 0.0)
        if looked.remaining < 1:
            self._refuse_auth_failures(ip, looked)

    async def auth_failed(self, ip: str) -> None:
        """A presented key was refused: count it; raise RateLimited once too many were."""
        decision = await self._take("af:" + ip, self.settings.auth_failures_per_minute)
        if not decision.allowed:
            self._refuse_auth_failures(ip, decision)

    async def settle(self, ip: str) -> None:
        """After the app, for a request that presented a key but never reached authentication
        (an unknown route): count it against its address, refusing nothing."""
        await self._take("ip:" + ip, self.settings.per_minute)

    # -- buckets -------------------------------------------------------------------------------

    async def _take(self, bucket: str, per_minute: int, cost: float = 1.0) -> Decision:
        if self._local is not None:  # no await: the buckets are in this process
            return self._local.take_now(bucket, per_minute / 60.0, float(per_minute), cost)
        return await self.limiter.take(bucket, per_minute / 60.0, float(per_minute), cost)

    async def _charge(self, kind: str, bucket: str, per_minute: int, whose: str) -> None:
        decision = await self._take(bucket, per_minute)
        if not decision.allowed:
            self.counts.add(kind)
            retry = retry_after_header(decision.retry_after_s)
            raise RateLimited(
                f"rate limit exceeded: {per_minute} requests per minute for {whose}; "
                f"retry in {retry} s",
                retry,
                per_minute,
            )

    def _refuse_auth_failures(self, ip: str, decision: Decision) -> None:
        per_minute = self.settings.auth_failures_per_minute
        self.counts.add("auth_failures")
        wait = decision.retry_after_s or wait_s(0.0, 1.0, per_minute / 60.0)
        retry = retry_after_header(wait)
        raise RateLimited(
            f"too many failed authentications from {ip} (limit {per_minute} per minute); "
            f"retry in {retry} s",
            retry,
            per_minute,
        )
