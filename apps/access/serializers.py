"""Shapes for the access API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from analytics_platform.json_body import JsonBodySerializer
from apps.access.models import ApiToken, TokenScope


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "is_staff"]
        read_only_fields = fields


class ApiTokenSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="active, expired or revoked")
    organization = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text="The organisation the token acts in (null: every one of yours)."
    )
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="read, write, admin.")
    parent_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="The token that minted it.")

    class Meta:
        model = ApiToken
        fields = [
            "id", "name", "key_prefix", "status", "organization", "scopes", "parent_id", "created_at", "expires_at",
            "revoked_at", "last_used_at",
        ]  # fmt: skip
        read_only_fields = fields


class ApiTokenCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100, help_text="What the token is for.")
    expires_in_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=3650,
        help_text="Omit for a token that never expires; a token-authenticated request always gets an expiry, "
        "no later than its own token's.",
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices),
        required=False,
        allow_empty=False,
        default=[TokenScope.READ],
        help_text="read (default), write, admin; write and admin include read. A token can only create tokens with "
        "its own scopes or fewer, and needs the admin scope to do so.",
    )
    organization = serializers.SlugField(
        required=False, help_text="Slug of the organisation the token acts in; needed when you belong to several."
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. Shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


ROLE_CHOICES = ["admin", "editor", "viewer"]


class OrganizationSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    slug = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, read_only=True, help_text="Your role in it.")
    created_at = serializers.DateTimeField(read_only=True)


class OrganizationCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, help_text="Used in URLs, e.g. 'acme-plants'.")


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, read_only=True)
    teams = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="Slugs of their teams.")
    created_at = serializers.DateTimeField(read_only=True)


class MemberCreateSerializer(JsonBodySerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class MemberUpdateSerializer(JsonBodySerializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class TeamSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    slug = serializers.CharField(read_only=True)
    members = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="Usernames.")
    created_at = serializers.DateTimeField(read_only=True)


class TeamCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100)


class TeamUpdateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=200)


class TeamMemberCreateSerializer(JsonBodySerializer):
    username = serializers.CharField(max_length=150)


class DataPolicySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    source = serializers.CharField(read_only=True, allow_null=True, help_text="A source slug, or null: every source.")
    all_members = serializers.BooleanField(read_only=True)
    users = serializers.ListField(child=serializers.CharField(), read_only=True)
    teams = serializers.ListField(child=serializers.CharField(), read_only=True)
    labels = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), read_only=True)
    metrics = serializers.ListField(child=serializers.CharField(), read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class DataPolicyWriteSerializer(JsonBodySerializer):
    """A policy: its subjects may read the series of `source` (every source of the organisation when null) whose
    labels match `labels` (each key's values OR-ed, keys AND-ed), only `metrics` when given."""

    name = serializers.CharField(max_length=200)
    source = serializers.CharField(max_length=100, allow_null=True, required=False, default=None)
    all_members = serializers.BooleanField(required=False, default=False, help_text="Grant every member.")
    users = serializers.ListField(child=serializers.CharField(max_length=150), required=False, default=list)
    teams = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    labels = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(), allow_empty=False), required=False, default=dict
    )
    metrics = serializers.ListField(
        child=serializers.CharField(), allow_null=True, allow_empty=False, required=False, default=None
    )


class DataPolicyUpdateSerializer(DataPolicyWriteSerializer):
    """The fields to change; the others keep their values."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty
