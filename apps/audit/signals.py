"""Sign-ins, failed sign-ins and sign-outs go to the audit log (Django's auth signals)."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from apps.audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="audit_sign_in")
def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(action="auth.sign_in", actor=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_sign_in_failed")
def _sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Django already masks the password in `credentials`; only the username is kept.
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action="auth.sign_in_failed",
        request=request,
        actor_description=f"anonymous (as {username!r})" if username else "anonymous",
        details={"username": username},
    )


@receiver(user_logged_out, dispatch_uid="audit_sign_out")
def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(action="auth.sign_out", actor=user, request=request)


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def _locked_out(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    audit_record(
        action="auth.locked_out",
        request=request,
        actor_description=f"anonymous (as {username!r})" if username else "anonymous",
        details={"username": username or "", "ip_address": kwargs.get("ip_address")},
    )
