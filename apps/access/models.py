"""Access models: personal API tokens, organisations, memberships, teams and row-level data policies."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class TokenScope(models.TextChoices):
    """What a token may do: read (GET, queries), write (create and change), admin (tokens, members, audit log)."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


class ApiToken(models.Model):
    """A personal API token. Only the SHA-256 digest of the secret is stored; the secret is shown once.

    A token acts for its user within its organisation only (every organisation of the user when it has none: a
    token made before tokens carried one) and only for its scopes. A token minted by another token records it
    as `parent`: it is never broader nor longer-lived, and revoking the parent revokes it too.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'grafana-import' or 'notebook'.")
    key_prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a token in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty means it never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    organization = models.ForeignKey(
        "access.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The organisation the token acts in; empty (older tokens only) means all of the user's.",
    )
    scopes = ArrayField(
        models.CharField(max_length=16, choices=TokenScope.choices),
        default=list,
        blank=True,
        help_text="read, write and/or admin.",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="The token that minted this one, if a token did.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_revoked(self) -> bool:
        """Whether the token was revoked."""
        return self.revoked_at is not None

    def is_expired(self, *, now=None) -> bool:
        """Whether the expiry time has passed."""
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def has_scope(self, scope: str) -> bool:
        """Whether the token carries `scope`."""
        return scope in self.scopes

    @property
    def status(self) -> str:
        """active, expired or revoked."""
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class Organization(models.Model):
    """A tenant: it owns sources (and later dashboards, alerts, reports); people belong to it by membership."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipRole(models.TextChoices):
    """What a member may do: admins manage members, teams and policies; editors manage sources, dashboards (and
    alert rules, reports); viewers read. What data anyone reads is decided by data policies, not by the role."""

    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A user's role in an organisation: admins and editors manage its sources, viewers read."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=MembershipRole.choices, default=MembershipRole.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="access_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Team(models.Model):
    """A named group of an organisation's members; policies and shares name teams.

    Its members are the users of `group`, a Django group of its own, so django-guardian's group object
    permissions carry the team's shares.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    group = models.OneToOneField("auth.Group", on_delete=models.PROTECT, related_name="team")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="access_team_slug_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"


class DataPolicy(models.Model):
    """Who may read which series of an organisation: a row-level (labels) and column-level (metrics) grant.

    Subjects: every member (`all_members`), some users, some teams. Object: one source, or every source of the
    organisation when `source` is empty; series whose labels match `labels` ({key: [values]}: each key's values
    OR-ed, the keys AND-ed; empty means every series); only `metrics` when given. Deny by default: what no
    policy grants is not readable.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="data_policies")
    name = models.CharField(max_length=200)
    source = models.ForeignKey(
        "sources.Source", on_delete=models.CASCADE, null=True, blank=True, related_name="data_policies"
    )
    all_members = models.BooleanField(default=False, help_text="Grant every member of the organisation.")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="data_policies")
    teams = models.ManyToManyField(Team, blank=True, related_name="data_policies")
    labels = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(null=True, blank=True, help_text="Metric names; empty (null) means every metric.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name", "id"]
        verbose_name = "data policy"
        verbose_name_plural = "data policies"

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"
