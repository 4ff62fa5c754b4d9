"""SSO events for the audit log (apps.audit once it is installed; the log file until then)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("apps.sso")


def sso_audit(*, action: str, **fields: Any) -> None:
    """Record one SSO event: `action` is `sso.sign_in`, `sso.sign_in_failed`, `sso.membership_changed`, ..."""
    try:
        from apps.audit.services import audit_record
    except ImportError:
        logger.info("audit %s %s", action, fields.get("details") or "")
        return
    audit_record(action=action, **fields)
