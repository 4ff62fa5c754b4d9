"""REST views for object shares, generic over the shared model: an app subclasses them and says how to find the
object for a request (404 when the caller cannot see it) and who may manage its shares."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer
from analytics_platform.json_body import JsonBodySerializer
from apps.access.sharing import LEVELS, object_access_list, object_share, object_share_list, object_unshare

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class ShareSerializer(serializers.Serializer):
    kind = serializers.CharField(read_only=True, help_text="user or team")
    name = serializers.CharField(read_only=True, help_text="The username, or the team's slug.")
    level = serializers.ChoiceField(choices=list(LEVELS), read_only=True)


class AccessSerializer(serializers.Serializer):
    username = serializers.CharField(read_only=True)
    level = serializers.ChoiceField(choices=list(LEVELS), read_only=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="Why they have access.")


class SharesSerializer(serializers.Serializer):
    shares = ShareSerializer(many=True, read_only=True)
    access = AccessSerializer(many=True, read_only=True, help_text="Everyone who can open it, and why.")


class ShareCreateSerializer(JsonBodySerializer):
    user = serializers.CharField(required=False, max_length=150, help_text="A member's username ...")
    team = serializers.CharField(required=False, max_length=100, help_text="... or a team's slug.")
    level = serializers.ChoiceField(choices=list(LEVELS))


def _shares(obj: Model) -> dict[str, Any]:
    return SharesSerializer({"shares": object_share_list(obj=obj), "access": object_access_list(obj=obj)}).data


class SharedObjectMixin:
    """What a subclass provides: the object (raising Http404) and whether the caller may manage its shares."""

    def shared_object(self, request: Request, **kwargs: Any) -> Model:
        raise NotImplementedError

    def may_manage_shares(self, request: Request, obj: Model) -> bool:
        raise NotImplementedError

    def _managed(self, request: Request, **kwargs: Any) -> Model:
        obj = self.shared_object(request, **kwargs)
        if not self.may_manage_shares(request, obj):
            raise PermissionDenied("Only organisation admins and editors may share this.")
        return obj


class ObjectShareListView(SharedObjectMixin, APIView):
    """Who can open the object and why; managers share it with a member or team as view or edit."""

    @extend_schema(responses={200: SharesSerializer, **ERRORS}, summary="Shares and access")
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(_shares(self.shared_object(request, **kwargs)))

    @extend_schema(request=ShareCreateSerializer, responses={200: SharesSerializer, **ERRORS}, summary="Share")
    def post(self, request: Request, **kwargs: Any) -> Response:
        obj = self._managed(request, **kwargs)
        serializer = ShareCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        object_share(obj=obj, level=data["level"], username=data.get("user"), team=data.get("team"))
        return Response(_shares(obj), status=status.HTTP_200_OK)


class ObjectShareDetailView(SharedObjectMixin, APIView):
    """Take back one share (`kind` is user or team)."""

    @extend_schema(request=None, responses={204: None, **ERRORS}, summary="Unshare")
    def delete(self, request: Request, kind: str, name: str, **kwargs: Any) -> Response:
        obj = self._managed(request, **kwargs)
        if kind not in ("user", "team"):
            raise Http404("Shares are with a user or a team.")
        removed = object_unshare(obj=obj, **({"username": name} if kind == "user" else {"team": name}))
        if not removed:
            raise Http404(f"This is not shared with {kind} {name!r}.")
        return Response(status=status.HTTP_204_NO_CONTENT)
