"""SSO configuration read from Django settings (which read the environment): what is configured, and the rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ROLE_RANK = {"viewer": 1, "editor": 2, "admin": 3}
# OIDC_TOKEN_AUTH_METHOD values.
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 (a method name)
CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 (a method name)


@dataclass(frozen=True)
class GroupRule:
    """Members of the provider group `group` get `role` in organisation `organization` (and join `team`)."""

    group: str
    organization: str
    role: str
    team: str = ""


def sso_configured() -> bool:
    """Whether an OpenID Connect provider is configured (OIDC_ISSUER set); without it nothing of SSO is active."""
    return bool(settings.OIDC_ISSUER)


def bearer_tokens_enabled() -> bool:
    """Whether API requests may carry JWT access tokens from the provider (OIDC_API_AUDIENCE set)."""
    return sso_configured() and bool(settings.OIDC_API_AUDIENCE)


def issuer() -> str:
    """The configured issuer without a trailing slash (as compared with the `iss` claim, see checks)."""
    return settings.OIDC_ISSUER.rstrip("/")


def issuer_problem(value: str) -> str | None:
    """Why `value` cannot be an issuer URL, or None. Plain http only for this machine (tests, development)."""
    parts = urlsplit(value)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        return f"OIDC_ISSUER must be an https:// URL, got {value!r}"
    if parts.scheme == "http" and parts.hostname not in {"localhost", "127.0.0.1", "::1"}:
        return f"OIDC_ISSUER must use https:// (plain http only for localhost), got {value!r}"
    if parts.query or parts.fragment:
        return f"OIDC_ISSUER must not have a query or fragment, got {value!r}"
    return None


def parse_group_rules(text: str, *, name: str = "OIDC_GROUP_RULES") -> list[GroupRule]:
    """Rules from the environment.

    Either `group=organization/role` or `group=organization/team/role` entries separated by `;` or newlines
    (a group name may contain `/`, as Keycloak's group paths do, but not `=`), or a JSON list of objects
    with `group`, `organization`, `role` and optionally `team`.
    """
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {error}.") from None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ImproperlyConfigured(f"{name} as JSON must be a list of objects.")
        rules = []
        for index, item in enumerate(items):
            unknown = set(item) - {"group", "organization", "team", "role"}
            if unknown:
                raise ImproperlyConfigured(f"{name}[{index}]: unknown keys {sorted(unknown)}.")
            rules.append(
                _rule(
                    str(item.get("group", "")),
                    str(item.get("organization", "")),
                    str(item.get("team") or ""),
                    str(item.get("role", "")),
                    where=f"{name}[{index}]",
                )
            )
        return rules
    rules = []
    for index, entry in enumerate(part.strip() for line in text.splitlines() for part in line.split(";")):
        if not entry:
            continue
        group, equals, target = entry.rpartition("=")
        parts = target.split("/")
        if not equals or len(parts) not in {2, 3}:
            raise ImproperlyConfigured(
                f"{name} entry {entry!r}: write group=organization/role or group=organization/team/role."
            )
        organization, team, role = (parts[0], "", parts[1]) if len(parts) == 2 else parts
        rules.append(
            _rule(group.strip(), organization.strip(), team.strip(), role.strip(), where=f"{name} entry {index + 1}")
        )
    return rules


def _rule(group: str, organization: str, team: str, role: str, *, where: str) -> GroupRule:
    if not group:
        raise ImproperlyConfigured(f"{where}: the group is empty.")
    if not organization:
        raise ImproperlyConfigured(f"{where}: the organisation slug is empty.")
    if role not in ROLE_RANK:
        raise ImproperlyConfigured(f"{where}: role must be one of {', '.join(ROLE_RANK)}, got {role!r}.")
    return GroupRule(group=group, organization=organization, team=team, role=role)


def settings_group_rules() -> list[GroupRule]:
    """The rules of OIDC_GROUP_RULES (parsed again when tests override the setting)."""
    return parse_group_rules(settings.OIDC_GROUP_RULES)


def local_password_allowed(username: str) -> bool:
    """Whether this user may sign in with a local password (OIDC_LOCAL_PASSWORDS off: break-glass users only)."""
    if settings.OIDC_LOCAL_PASSWORDS:
        return True
    return username in settings.OIDC_BREAK_GLASS_USERS
