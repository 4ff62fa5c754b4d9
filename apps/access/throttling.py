"""Rate limits on the query API, per API token (or per user for a session), counted in the Redis cache."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from apps.access.models import ApiToken


class PrincipalRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (views opt in with `throttle_scope`), keyed by the API token a request carries, else
    by its user: two notebooks with two tokens have a budget each; anonymous requests never get this far."""

    def get_cache_key(self, request: Request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
