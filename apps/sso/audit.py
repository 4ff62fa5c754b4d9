"""SSO events for the audit log."""

from __future__ import annotations

from typing import Any

from apps.audit.services import audit_record


def sso_audit(*, action: str, **fields: Any) -> None:
    """Record one SSO event (sso.sign_in, sso.sign_in_failed, sso.membership_*, sso.team_*, sso.session_ended)."""
    audit_record(action=action, **fields)
