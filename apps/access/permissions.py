"""API-token scopes on every API view: read for safe methods, write for changes, admin where a view says so."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.access.models import ApiToken, TokenScope


def scope_required_for(request: Request, view) -> str:
    """The scope a token needs here: the view's `scope_required`, else read for safe methods and write otherwise."""
    declared = getattr(view, "scope_required", None)
    if isinstance(declared, dict):
        declared = declared.get(request.method)
    if declared:
        return str(declared)
    return str(TokenScope.READ.value if request.method in SAFE_METHODS else TokenScope.WRITE.value)


class TokenScopePermission(BasePermission):
    """Requests authenticated with a token (an API token, or the OpenID Connect provider's access token) may do only
    what its scopes allow (sessions are not limited)."""

    def has_permission(self, request: Request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken) and not hasattr(token, "has_scope"):
            return True
        required = scope_required_for(request, view)
        if token.has_scope(required):
            return True
        self.message = (
            f"This API token's scopes ({', '.join(token.scopes)}) do not include {required!r}, which "
            f"{request.method} {request.path} needs. Create a token with the {required} scope."
        )
        return False
