"""Sign-in, callback and sign-out with the provider (mozilla-django-oidc's views, fitted to discovery)."""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.views import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView, OIDCLogoutView

from apps.sso.audit import sso_audit
from apps.sso.backend import library_setting
from apps.sso.config import sso_configured
from apps.sso.provider import ProviderError, provider_metadata
from apps.sso.session import SESSION_ID_TOKEN, sso_session
from apps.sso.tokens import TokenError

UNKNOWN_STATE = "this response from the provider does not belong to a sign-in started in this browser (state)"


def sign_in_failed(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    """The sign-in page again, saying why single sign-on did not work; the failure goes to the audit log."""
    sso_audit(
        action="sso.sign_in_failed",
        request=request,
        actor_description="anonymous (single sign-on)",
        details={"reason": reason},
    )
    context = {"form": AuthenticationForm(request), "sso_error": reason}
    return render(request, "registration/login.html", context, status=status)


class SignInView(OIDCAuthenticationRequestView):
    """Redirect to the provider's authorization endpoint with state, nonce and a PKCE challenge."""

    get_settings = staticmethod(library_setting)

    def __init__(self, **kwargs) -> None:
        View.__init__(self, **kwargs)  # the library's reads the endpoint from settings at construction

    def get(self, request: HttpRequest) -> HttpResponse:
        if not sso_configured():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata().authorization_endpoint
        except ProviderError as error:
            return sign_in_failed(request, f"{settings.OIDC_PROVIDER_NAME} is unavailable: {error}", status=502)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back: check state, exchange the code (with the PKCE verifier), verify, sign in."""

    get_settings = staticmethod(library_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not sso_configured():
            raise Http404("Single sign-on is not configured.")
        states = request.session.get("oidc_states")
        self.state_known = isinstance(states, dict) and request.GET.get("state") in states
        try:
            return super().get(request)
        except SuspiciousOperation:
            return sign_in_failed(request, UNKNOWN_STATE, status=400)
        except TokenError as error:
            return sign_in_failed(request, f"the provider's ID token was refused: {error}", status=401)
        except requests.HTTPError as error:
            detail = error.response.text[:200] if error.response is not None else str(error)
            url = error.response.url if error.response is not None else "the provider"
            return sign_in_failed(request, f"{url} refused the sign-in: {detail}", status=502)
        except (requests.RequestException, ProviderError) as error:
            return sign_in_failed(request, f"{settings.OIDC_PROVIDER_NAME} could not be reached: {error}", status=502)

    def login_failure(self) -> HttpResponse:
        request = self.request
        reason = getattr(request, "sso_failure", None)
        if reason:
            return sign_in_failed(request, reason, status=403)
        if "code" in request.GET and not self.state_known:
            return sign_in_failed(request, UNKNOWN_STATE, status=400)
        if request.GET.get("error"):
            detail = request.GET.get("error_description") or request.GET["error"]
            return sign_in_failed(request, f"{settings.OIDC_PROVIDER_NAME} answered: {detail}", status=401)
        return sign_in_failed(request, "the sign-in was not completed; start again", status=400)


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out goes: the provider's end_session_endpoint (RP-initiated logout), or our sign-in page."""
    back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    try:
        endpoint = provider_metadata().end_session_endpoint
    except ProviderError:
        return back
    if not endpoint:
        return back
    query = {"post_logout_redirect_uri": back, "client_id": settings.OIDC_CLIENT_ID}
    if request.session.get(SESSION_ID_TOKEN):
        query["id_token_hint"] = request.session[SESSION_ID_TOKEN]
    return f"{endpoint}?{urlencode(query)}"


class ProviderLogoutView(OIDCLogoutView):
    """End our session, then the provider's (POST only)."""

    @staticmethod
    def get_settings(name, *default):
        if name == "OIDC_OP_LOGOUT_URL_METHOD":
            return "apps.sso.views.provider_logout_url"
        return library_setting(name, *default)


def logout(request: HttpRequest) -> HttpResponse:
    """Sign out: through the provider for SSO sessions, Django's own sign-out otherwise."""
    if sso_configured() and request.user.is_authenticated and sso_session(request):
        return ProviderLogoutView.as_view()(request)
    return auth_views.LogoutView.as_view()(request)
