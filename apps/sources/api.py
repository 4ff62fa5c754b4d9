"""REST endpoints for sources: create, list, edit, pause and resume; write keys; schema versions."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from apps.access.models import Organization
from apps.access.selectors import organization_list_for_user
from apps.sources.models import Source, SourceSchema
from apps.sources.references import SourceAmbiguous, source_reference_resolve
from apps.sources.selectors import MANAGER_ROLES, source_can_manage, source_list_for_user
from apps.sources.serializers import (
    SchemaCreateSerializer,
    SchemaSerializer,
    SourceCreatedSerializer,
    SourceCreateSerializer,
    SourceSerializer,
    SourceUpdateSerializer,
    WriteKeyCreatedSerializer,
    WriteKeyCreateSerializer,
    WriteKeySerializer,
)
from apps.sources.services import (
    SchemaBreakingChange,
    SourceError,
    schema_version_create,
    source_create,
    source_set_enabled,
    source_update,
    write_key_create,
    write_key_revoke,
)


def field_error(error: SourceError) -> Response:
    """A refused change as {"detail": "<field>: <message>", "field": ...} with the error's status."""
    extra = {"reasons": error.reasons} if isinstance(error, SchemaBreakingChange) else {}
    return field_error_response(error.field, error.message, error.status, **extra)


def _with_current_schema(sources):
    return sources.prefetch_related(
        Prefetch("schemas", queryset=SourceSchema.objects.order_by("-version"), to_attr="current_schemas")
    )


def source_for_request(request: Request, slug: str, *, manage: bool = False) -> Source:
    """The source if the user may see it (404 otherwise); with `manage`, 403 unless they may edit it.

    Slugs are unique per organisation: `?organization=<slug>` picks one when the user sees the slug in several
    (400 naming `organization` until they do; apps/sources/references.py)."""
    candidates = source_list_for_user(user=request.user)
    organization = request.query_params.get("organization")
    if organization:
        candidates = candidates.filter(organization__slug=organization)
    try:
        source = source_reference_resolve(
            candidates=candidates,
            reference=slug,
            field="organization",
            how="name one with ?organization=<slug>.",
        )
    except SourceAmbiguous as error:
        raise serializers.ValidationError({error.field: [error.message]}) from None
    if source is None:
        raise Http404(f"No source {slug!r} that you can see.")
    if manage and not source_can_manage(user=request.user, source=source):
        raise PermissionDenied("Only organisation admins and editors may change this source.")
    return source


class SourceListCreateView(ListAPIView):
    """Sources of your organisations; create one (with its first write key, shown once)."""

    serializer_class = SourceSerializer

    def get_queryset(self):
        return _with_current_schema(source_list_for_user(user=self.request.user))

    @extend_schema(
        request=SourceCreateSerializer,
        responses={201: SourceCreatedSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
        summary="Create a source",
        examples=[
            OpenApiExample(
                "MQTT source with an inferred schema",
                value={
                    "name": "Plant sensors",
                    "slug": "plant",
                    "kind": "mqtt",
                    "schema_mode": "infer",
                    "config": {"topic": "plant/+/telemetry", "format": "json"},
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = SourceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        organization = self._organization(request, data.pop("organization", None))
        try:
            source, raw_key = source_create(
                organization=organization,
                schema_definition=data.pop("schema", None),
                created_by=request.user,
                **data,
            )
        except SourceError as error:
            return field_error(error)
        source.write_key = raw_key
        return Response(SourceCreatedSerializer(source).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _organization(request: Request, slug: str | None) -> Organization:
        organizations = organization_list_for_user(user=request.user)
        if request.user.is_superuser and slug:
            organization = Organization.objects.filter(slug=slug).first()
        elif slug:
            organization = organizations.filter(slug=slug).first()
        else:
            mine = list(organizations)
            if len(mine) != 1:
                raise serializers.ValidationError(
                    {"organization": ["You belong to several organisations (or none); name one by its slug."]}
                    if mine
                    else {"organization": ["You belong to no organisation; ask an admin to add you to one."]}
                )
            organization = mine[0]
        if organization is None:
            raise serializers.ValidationError({"organization": [f"No organisation {slug!r} that you belong to."]})
        if (
            not request.user.is_superuser
            and not organizations.filter(
                pk=organization.pk, memberships__user=request.user, memberships__role__in=MANAGER_ROLES
            ).exists()
        ):
            raise PermissionDenied("Only organisation admins and editors may create sources.")
        return organization


class SourceDetailView(APIView):
    """One source: read or edit."""

    @extend_schema(responses={200: SourceSerializer}, summary="Get a source")
    def get(self, request: Request, slug: str) -> Response:
        return Response(SourceSerializer(source_for_request(request, slug)).data)

    @extend_schema(
        request=SourceUpdateSerializer,
        responses={200: SourceSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        summary="Edit a source",
    )
    def patch(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = SourceUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            source = source_update(source=source, **serializer.validated_data)
        except SourceError as error:
            return field_error(error)
        _forget(source)
        return Response(SourceSerializer(source).data)


def _forget(source: Source) -> None:
    from apps.ingestion.services import ingest_targets_forget

    ingest_targets_forget(source_id=source.id)


class SourcePauseView(APIView):
    """Pause a source: writes answer 409 and its connector stops, until resumed."""

    enabled = False

    @extend_schema(request=None, responses={200: SourceSerializer}, summary="Pause a source")
    def post(self, request: Request, slug: str) -> Response:
        source = source_set_enabled(source=source_for_request(request, slug, manage=True), enabled=self.enabled)
        _forget(source)
        return Response(SourceSerializer(source).data)


class SourceResumeView(SourcePauseView):
    """Resume a paused source."""

    enabled = True

    @extend_schema(request=None, responses={200: SourceSerializer}, summary="Resume a source")
    def post(self, request: Request, slug: str) -> Response:
        return super().post(request, slug)


class WriteKeyListCreateView(APIView):
    """A source's write keys (secrets are never shown again); create one."""

    @extend_schema(responses={200: WriteKeySerializer(many=True)}, summary="List write keys")
    def get(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        return Response(WriteKeySerializer(source.write_keys.order_by("-created_at"), many=True).data)

    @extend_schema(
        request=WriteKeyCreateSerializer, responses={201: WriteKeyCreatedSerializer}, summary="Create a write key"
    )
    def post(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = WriteKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            key, raw_key = write_key_create(
                source=source, name=serializer.validated_data["name"], created_by=request.user
            )
        except SourceError as error:
            return field_error(error)
        key.write_key = raw_key
        return Response(WriteKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class WriteKeyRevokeView(APIView):
    """Revoke a write key; agents using it are refused within seconds."""

    @extend_schema(request=None, responses={200: WriteKeySerializer}, summary="Revoke a write key")
    def post(self, request: Request, slug: str, key_id: int) -> Response:
        source = source_for_request(request, slug, manage=True)
        key = source.write_keys.filter(pk=key_id).first()
        if key is None:
            raise Http404("No such write key on this source.")
        return Response(WriteKeySerializer(write_key_revoke(key=key)).data)


class SchemaListCreateView(APIView):
    """A source's schema versions, newest first; add a version."""

    @extend_schema(responses={200: SchemaSerializer(many=True)}, summary="List schema versions")
    def get(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug)
        return Response(SchemaSerializer(source.schemas.order_by("-version"), many=True).data)

    @extend_schema(
        request=SchemaCreateSerializer,
        responses={201: SchemaSerializer, 400: ErrorSerializer, 409: ErrorSerializer},
        summary="Add a schema version",
        description="Compatible changes (optional fields, wider ranges/enums, relaxed rules) are accepted; a "
        'breaking change answers 409 listing why, unless the request says "breaking": true.',
    )
    def post(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = SchemaCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            schema = schema_version_create(source=source, created_by=request.user, **serializer.validated_data)
        except SourceError as error:
            return field_error(error)
        _forget(source)
        return Response(SchemaSerializer(schema).data, status=status.HTTP_201_CREATED)


class SchemaDetailView(APIView):
    """One schema version."""

    @extend_schema(responses={200: SchemaSerializer}, summary="Get a schema version")
    def get(self, request: Request, slug: str, version: int) -> Response:
        source = source_for_request(request, slug)
        schema = source.schemas.filter(version=version).first()
        if schema is None:
            raise Http404(f"Source {slug!r} has no schema version {version}.")
        return Response(SchemaSerializer(schema).data)
