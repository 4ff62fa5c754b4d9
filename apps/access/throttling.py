"""Rate limits on the query API, per API token (or per user for a session), counted in Redis."""

from __future__ import annotations

import functools
import logging
import secrets

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from analytics_platform.redis_client import redis_client, redis_key
from apps.access.models import ApiToken

logger = logging.getLogger(__name__)

# A sliding log of the window's requests in a sorted set (score: the request's time), checked and added to in one
# round trip. DRF's own throttle reads and writes a pickled list through the cache (two round trips per request,
# a fifth of a shared query answer's time with forty people opening a dashboard: bench/dashboards.py).
# KEYS[1] the log; ARGV: now, window seconds, limit, a unique member. Returns {allowed, oldest time in the log}.
_SLIDING_LOG = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local allowed = 0
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  allowed = 1
end
redis.call('EXPIRE', KEYS[1], math.ceil(window))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {allowed, oldest[2] or ARGV[1]}
"""


@functools.cache
def _sliding_log():
    """The script, registered once per process (called by its hash; redis-py loads it again after a restart)."""
    return redis_client().register_script(_SLIDING_LOG)


class PrincipalRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (views opt in with `throttle_scope`), keyed by the API token a request carries, else
    by its user: two notebooks with two tokens have a budget each; anonymous requests never get this far.

    The same limits as DRF's (at most N requests in any window of the rate's length; a refused request does not
    count), kept in Redis with one script call. If Redis cannot answer, the request is let through (and logged):
    the query API works without Redis, and a limit must not turn an outage into errors.
    """

    def get_cache_key(self, request: Request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        try:
            allowed, oldest = _sliding_log()(
                keys=[redis_key(key)],
                args=[repr(self.now), self.duration, self.num_requests, f"{self.now!r}:{secrets.token_hex(4)}"],
            )
        except Exception:
            logger.warning("rate limits unreachable in Redis; letting the request through", exc_info=True)
            return True
        self.oldest = float(oldest)
        return bool(allowed)

    def wait(self) -> float | None:
        """Seconds until the oldest request in the window leaves it, so that one more fits."""
        return max(1.0, self.oldest + self.duration - self.now)
