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
