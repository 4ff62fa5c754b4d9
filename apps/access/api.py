"""REST endpoints for the signed-in user and their API tokens."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.access.models import ApiToken, Organization
from apps.access.selectors import api_token_list
from apps.access.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    UserSerializer,
)
from apps.access.services import ApiTokenRefused, api_token_create, api_token_expiry_from_days, api_token_revoke


class MeView(APIView):
    """The authenticated user."""

    @extend_schema(responses=UserSerializer, summary="Who am I")
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)


class ApiTokenListCreateView(ListAPIView):
    """List your API tokens, or create one (its secret is in the response, once)."""

    serializer_class = ApiTokenSerializer
    scope_required = "admin"  # managing credentials

    def get_queryset(self):
        return api_token_list(user=self.request.user)

    @extend_schema(
        request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer}, summary="Create a token"
    )
    def post(self, request: Request) -> Response:
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = None
        if serializer.validated_data.get("organization"):
            organization = Organization.objects.filter(slug=serializer.validated_data["organization"]).first()
            if organization is None:
                raise ApiTokenRefused("organization", "you are not a member of that organisation.", status=404)
        token, raw_key = api_token_create(
            user=request.user,
            name=serializer.validated_data["name"],
            expires_at=api_token_expiry_from_days(serializer.validated_data.get("expires_in_days")),
            scopes=serializer.validated_data["scopes"],
            organization=organization,
            parent=request.auth if isinstance(request.auth, ApiToken) else None,
        )
        token.token = raw_key
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class ApiTokenRevokeView(APIView):
    """Revoke one of your tokens (and every token it minted); its open WebSockets close at once."""

    scope_required = "admin"

    @extend_schema(request=None, responses={200: ApiTokenSerializer}, summary="Revoke a token")
    def delete(self, request: Request, token_id: int) -> Response:
        token = get_object_or_404(api_token_list(user=request.user), pk=token_id)
        return Response(ApiTokenSerializer(api_token_revoke(token=token)).data)
