"""SSO models: identities linked to users, group rules set in the admin, SSO-managed memberships, machine clients."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.access.models import Membership, MembershipRole, Organization, Team


class OidcIdentity(models.Model):
    """A person at the provider (issuer + subject) and the user they sign in as; users are found by this, not email."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255, help_text="The provider's `sub` claim: stable, never reassigned.")
    groups = models.JSONField(default=list, blank=True, help_text="The groups claim at the last sign-in.")
    created_at = models.DateTimeField(default=timezone.now)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique")]
        verbose_name = "OIDC identity"
        verbose_name_plural = "OIDC identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer} → {self.user}"


class GroupRule(models.Model):
    """Set in the admin, beside OIDC_GROUP_RULES: members of `group` get `role` in `organization`."""

    group = models.CharField(max_length=255, help_text="The group name exactly as the provider's groups claim has it.")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sso_group_rules")
    team = models.CharField(
        max_length=100, blank=True, help_text="Slug of a team of the organisation to join as well (optional)."
    )
    role = models.CharField(max_length=16, choices=MembershipRole.choices, default=MembershipRole.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group"]
        constraints = [models.UniqueConstraint(fields=["group", "organization", "team"], name="sso_group_rule_unique")]
        verbose_name = "SSO group rule"

    def __str__(self) -> str:
        team = f"/{self.team}" if self.team else ""
        return f"{self.group} → {self.organization.slug}{team} ({self.role})"


class ManagedMembership(models.Model):
    """Marks a membership as granted by SSO group rules: sign-ins change or remove it; manual ones are left alone."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="sso")
    groups = models.JSONField(default=list, help_text="The provider groups that granted the current role.")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.membership} (from SSO groups {', '.join(self.groups)})"


class ManagedTeamMembership(models.Model):
    """Marks a user's place in a team as granted by SSO group rules (team members are the team group's users)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_teams")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sso_members")
    groups = models.JSONField(default=list, help_text="The provider groups that put the user in the team.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="sso_team_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} (from SSO groups {', '.join(self.groups)})"


class ServiceClient(models.Model):
    """A machine client of the provider (client credentials grant) and the service-account user it acts as."""

    client_id = models.CharField(max_length=255, unique=True, help_text="The client id at the provider.")
    subject = models.CharField(
        max_length=255,
        blank=True,
        help_text="The `sub` of this client's tokens when it is not the client id (Keycloak: the service-account "
        "user's id; Entra ID: the service principal's object id).",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="sso_service_client",
        help_text="The service account: its memberships say what the client may see and do.",
    )
    scopes = models.CharField(
        max_length=500,
        blank=True,
        help_text="Space-separated platform scopes (read, write, admin) this client may use; its tokens' scopes "
        "are cut down to these. Empty: whatever its tokens grant.",
    )
    organization = models.ForeignKey(
        "access.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sso_service_clients",
        help_text="The organisation this client's tokens act in (as a personal API token's); empty: every "
        "organisation its service account is a member of.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["client_id"]
        verbose_name = "SSO service client"

    def __str__(self) -> str:
        return f"{self.client_id} → {self.user}"

    @property
    def expected_subject(self) -> str:
        """The `sub` its client-credentials tokens carry."""
        return self.subject or self.client_id
