"""Shapes for the access API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from analytics_platform.json_body import JsonBodySerializer
from apps.access.models import ApiToken


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "is_staff"]
        read_only_fields = fields


class ApiTokenSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="active, expired or revoked")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "key_prefix", "status", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100, help_text="What the token is for.")
    expires_in_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=3650, help_text="Omit for a token that never expires."
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. Shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
