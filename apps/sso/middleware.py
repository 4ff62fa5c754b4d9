"""End SSO sessions whose provider tokens can no longer be refreshed."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout

from apps.sso.audit import sso_audit
from apps.sso.config import sso_configured
from apps.sso.session import sso_session, sso_session_check


class SsoSessionMiddleware:
    """After AuthenticationMiddleware: an SSO session whose tokens the provider will not renew is signed out.

    The request then goes on anonymously, so pages redirect to sign-in and the API answers 401/403 as for
    any signed-out caller.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if sso_configured() and request.user.is_authenticated and sso_session(request):
            reason = sso_session_check(request)
            if reason is not None:
                user = request.user
                sso_audit(action="sso.session_ended", actor=user, request=request, details={"reason": reason})
                logout(request)
                messages.warning(request, f"Your single sign-on session ended: {reason}. Sign in again.")
        return self.get_response(request)
