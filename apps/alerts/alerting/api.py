"""REST endpoints for alerting: contact points, rules, alert instances (acknowledge, assign), state history,
silences, mute timings, notification policies and notifications. Members read; admins and editors write;
another organisation's objects answer 404.
"""

from __future__ import annotations

from django.db.models import Model, QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, FieldError, field_error_response
from apps.access.models import Organization
from apps.access.selectors import organization_ids_for_user
from apps.alerts.alerting import selectors, serializers
from apps.alerts.alerting import services as alerting
from apps.alerts.alerting.selectors import EDITOR_ROLES, alerting_can_edit
from apps.alerts.models import AlertState
from apps.storage.query.spec import QuerySpecError, time_parse

_ERROR = ErrorSerializer


class _RefusedError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _organization_for_write(request: Request) -> Organization:
    """The organisation a new object goes to: `organization` (slug) or the one the user edits."""
    slug = request.data.get("organization") if isinstance(request.data, dict) else None
    editable = Organization.objects.filter(pk__in=organization_ids_for_user(user=request.user, roles=EDITOR_ROLES))
    if request.user.is_superuser:
        editable = Organization.objects.all()
    if slug:
        organization = editable.filter(slug=slug).first()
        if organization is None:
            visible = Organization.objects.filter(pk__in=organization_ids_for_user(user=request.user), slug=slug)
            if visible.exists():
                raise PermissionDenied("Only organisation admins and editors may change alerting.")
            raise _RefusedError(field_error_response("organization", "no organisation with this slug of yours", 400))
        return organization
    organizations = list(editable[:2])
    if len(organizations) == 1:
        return organizations[0]
    if not organizations:
        raise PermissionDenied("Only organisation admins and editors may change alerting.")
    raise _RefusedError(field_error_response("organization", "you edit several organisations: name one (slug)", 400))


def _get(queryset: QuerySet, pk: int, what: str) -> Model:
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"No {what} {pk} that you can see.")
    return found


def _check_edit(request: Request, organization_id: int) -> None:
    if not alerting_can_edit(user=request.user, organization_id=organization_id):
        raise PermissionDenied("Only organisation admins and editors may change alerting.")


def _refusal(error: alerting.AlertingError) -> Response:
    return field_error_response(error.field, error.message, error.status)


def _id_param(params, name: str) -> int:
    """A query parameter that must be one id (given once): 400 naming it otherwise."""
    values = params.getlist(name)
    if len(values) != 1 or not values[0].isdigit() or not values[0].isascii():
        raise FieldError(name, "must be one id, a whole number.")
    return int(values[0])


def _states_param(text: str) -> list[str]:
    """`state=firing,pending`: known states only, 400 naming `state` otherwise."""
    states = [state.strip() for state in text.split(",") if state.strip()]
    unknown = [state for state in states if state not in AlertState.values]
    if unknown:
        raise FieldError("state", f"unknown state {unknown[0]!r}; use {', '.join(AlertState.values)}.")
    return states


class _CreateMixin:
    """POST: pick the organisation, call `create`, answer 201 with the output serializer."""

    output = None

    def create(self, request: Request, organization: Organization):  # pragma: no cover - overridden
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        try:
            if not isinstance(request.data, dict):
                raise alerting.AlertingError("body", "send a JSON object.")
            organization = _organization_for_write(request)
            created = self.create(request, organization)
        except _RefusedError as refused:
            return refused.response
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(self.output(created).data, status=status.HTTP_201_CREATED)


# Contact points ---------------------------------------------------------------------------------------------------


class ContactPointListCreateView(_CreateMixin, ListAPIView):
    """Contact points of your organisations; create one."""

    serializer_class = serializers.ContactPointSerializer
    output = serializers.ContactPointSerializer

    def get_queryset(self):
        return selectors.contact_point_list_for_user(user=self.request.user)

    def create(self, request, organization):
        body = request.data
        return alerting.contact_point_create(
            organization=organization, created_by=request.user, name=body.get("name"), kind=body.get("kind"),
            config=body.get("config", {}),
        )  # fmt: skip

    @extend_schema(
        request=serializers.ContactPointInputSerializer,
        responses={201: serializers.ContactPointSerializer, 400: _ERROR, 403: _ERROR, 409: _ERROR},
        summary="Create a contact point",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class ContactPointDetailView(APIView):
    """One contact point: read, change, delete."""

    def _object(self, request, contact_point_id, *, edit=False):
        contact_point = _get(
            selectors.contact_point_list_for_user(user=request.user), contact_point_id, "contact point"
        )
        if edit:
            _check_edit(request, contact_point.organization_id)
        return contact_point

    @extend_schema(responses={200: serializers.ContactPointSerializer}, summary="Get a contact point")
    def get(self, request: Request, contact_point_id: int) -> Response:
        return Response(serializers.ContactPointSerializer(self._object(request, contact_point_id)).data)

    @extend_schema(
        request=serializers.ContactPointInputSerializer(partial=True),
        responses={200: serializers.ContactPointSerializer, 400: _ERROR, 403: _ERROR},
        summary="Change a contact point",
    )
    def patch(self, request: Request, contact_point_id: int) -> Response:
        contact_point = self._object(request, contact_point_id, edit=True)
        try:
            contact_point = alerting.contact_point_update(contact_point=contact_point, data=request.data)
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(serializers.ContactPointSerializer(contact_point).data)

    @extend_schema(responses={204: None, 409: _ERROR}, summary="Delete a contact point")
    def delete(self, request: Request, contact_point_id: int) -> Response:
        try:
            alerting.contact_point_delete(contact_point=self._object(request, contact_point_id, edit=True))
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactPointTestView(APIView):
    """Send a test notification to a contact point now."""

    @extend_schema(request=None, responses={200: serializers.NotificationSerializer}, summary="Send a test")
    def post(self, request: Request, contact_point_id: int) -> Response:
        contact_point = _get(
            selectors.contact_point_list_for_user(user=request.user), contact_point_id, "contact point"
        )
        _check_edit(request, contact_point.organization_id)
        notification = alerting.contact_point_test(contact_point=contact_point, user=request.user)
        return Response(serializers.NotificationSerializer(notification).data)


# Rules ---------------------------------------------------------------------------------------------------------------


class AlertRuleListCreateView(_CreateMixin, ListAPIView):
    """Alert rules of your organisations with their instances' states; create one (you become its owner)."""

    serializer_class = serializers.AlertRuleSerializer
    output = serializers.AlertRuleSerializer

    def get_queryset(self):
        return selectors.alert_rule_list_for_user(user=self.request.user).prefetch_related("instances")

    def create(self, request, organization):
        if not isinstance(request.data, dict):
            raise alerting.AlertingError("body", "send a JSON object.")
        return alerting.alert_rule_create(organization=organization, owner=request.user, data=request.data)

    @extend_schema(
        request=serializers.AlertRuleInputSerializer,
        responses={201: serializers.AlertRuleSerializer, 400: _ERROR, 403: _ERROR},
        summary="Create an alert rule",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class AlertRuleDetailView(APIView):
    """One rule: read, change, delete."""

    def _object(self, request, rule_id, *, edit=False):
        rule = _get(selectors.alert_rule_list_for_user(user=request.user), rule_id, "alert rule")
        if edit:
            _check_edit(request, rule.organization_id)
        return rule

    @extend_schema(responses={200: serializers.AlertRuleSerializer}, summary="Get an alert rule")
    def get(self, request: Request, rule_id: int) -> Response:
        return Response(serializers.AlertRuleSerializer(self._object(request, rule_id)).data)

    @extend_schema(
        request=serializers.AlertRuleInputSerializer(partial=True),
        responses={200: serializers.AlertRuleSerializer, 400: _ERROR, 403: _ERROR},
        summary="Change an alert rule",
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        rule = self._object(request, rule_id, edit=True)
        try:
            rule = alerting.alert_rule_update(rule=rule, data=request.data)
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(serializers.AlertRuleSerializer(rule).data)

    @extend_schema(responses={204: None}, summary="Delete an alert rule")
    def delete(self, request: Request, rule_id: int) -> Response:
        alerting.alert_rule_delete(rule=self._object(request, rule_id, edit=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertRuleBacktestView(APIView):
    """Backtest a rule body over the last 24 hours or 7 days: where it would have fired, how many notifications."""

    scope_required = "read"  # a POST that only reads

    @extend_schema(
        request=serializers.AlertRuleInputSerializer,
        parameters=[
            OpenApiParameter("start", str, description="From (default -24h; at most 7 days back)."),
            OpenApiParameter("end", str, description="Until (default now)."),
        ],
        responses={200: serializers.BacktestSerializer, 400: _ERROR, 403: _ERROR, 422: _ERROR},
        summary="Backtest an alert rule",
    )
    def post(self, request: Request) -> Response:
        now = timezone.now()
        try:
            start = time_parse(request.query_params.get("start", "-24h"), field="start", now=now)
            end = time_parse(request.query_params.get("end", "now"), field="end", now=now)
        except QuerySpecError as error:
            return field_error_response(error.field, error.message, 400)
        if end <= start:
            return field_error_response("end", "must be after start", 400)
        if not isinstance(request.data, dict):
            return field_error_response("body", "send a JSON object", 400)
        try:
            organization = _organization_for_write(request)
            answer = alerting.alert_rule_backtest(
                organization=organization, owner=request.user, data=request.data, start=start, end=end
            )
        except _RefusedError as refused:
            return refused.response
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(answer)


# Instances and history ---------------------------------------------------------------------------------------------


class AlertInstanceListView(ListAPIView):
    """Alert instances of your organisations' rules, most urgent first (firing, nodata, error, pending, recovering,
    normal), then the longest in their state."""

    serializer_class = serializers.AlertInstanceSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("rule", int, description="Only this rule's instances."),
            OpenApiParameter(
                "state", str, description="Only these states, comma-separated (normal, pending, firing, ...)."
            ),
        ],
        summary="List alert instances",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        instances = selectors.alert_instance_list_for_user(user=self.request.user)
        params = self.request.query_params
        if "rule" in params:
            instances = instances.filter(rule_id=_id_param(params, "rule"))
        if params.get("state"):
            instances = instances.filter(state__in=_states_param(params["state"]))
        return instances


class AlertInstanceDetailView(APIView):
    """One alert instance."""

    @extend_schema(responses={200: serializers.AlertInstanceSerializer}, summary="Get an alert instance")
    def get(self, request: Request, instance_id: int) -> Response:
        instance = _get(selectors.alert_instance_list_for_user(user=request.user), instance_id, "alert instance")
        return Response(serializers.AlertInstanceSerializer(instance).data)


class AlertInstanceAcknowledgeView(APIView):
    """Acknowledge an instance (any member: viewers on call may acknowledge too)."""

    @extend_schema(request=None, responses={200: serializers.AlertInstanceSerializer}, summary="Acknowledge")
    def post(self, request: Request, instance_id: int) -> Response:
        instance = _get(selectors.alert_instance_list_for_user(user=request.user), instance_id, "alert instance")
        instance = alerting.alert_instance_acknowledge(instance=instance, user=request.user)
        return Response(serializers.AlertInstanceSerializer(instance).data)


class AlertInstanceAssignView(APIView):
    """Assign an instance to a member of its organisation (editors)."""

    @extend_schema(
        request=serializers.AssignSerializer,
        responses={200: serializers.AlertInstanceSerializer, 400: _ERROR, 403: _ERROR},
        summary="Assign",
    )
    def post(self, request: Request, instance_id: int) -> Response:
        instance = _get(selectors.alert_instance_list_for_user(user=request.user), instance_id, "alert instance")
        _check_edit(request, instance.rule.organization_id)
        body = serializers.AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            instance = alerting.alert_instance_assign(instance=instance, assignee_id=body.validated_data["assignee"])
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(serializers.AlertInstanceSerializer(instance).data)


class StateHistoryView(ListAPIView):
    """State changes of your organisations' alert instances, newest first (timelines and chart annotations)."""

    serializer_class = serializers.StateTransitionSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("rule", int, description="Only this rule."),
            OpenApiParameter("instance", int, description="Only this instance."),
        ],
        summary="List state history",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        history = selectors.state_transition_list_for_user(user=self.request.user)
        params = self.request.query_params
        if "rule" in params:
            history = history.filter(rule_id=_id_param(params, "rule"))
        if "instance" in params:
            history = history.filter(instance_id=_id_param(params, "instance"))
        return history


class NotificationListView(ListAPIView):
    """Notifications sent or queued to your organisations' contact points, with every delivery attempt."""

    serializer_class = serializers.NotificationSerializer

    def get_queryset(self):
        return selectors.notification_list_for_user(user=self.request.user).prefetch_related("delivery_attempts")


# Silences, mute timings, policies -----------------------------------------------------------------------------------


class SilenceListCreateView(_CreateMixin, ListAPIView):
    """Silences of your organisations; create one."""

    serializer_class = serializers.SilenceSerializer
    output = serializers.SilenceSerializer

    def get_queryset(self):
        return selectors.silence_list_for_user(user=self.request.user)

    def create(self, request, organization):
        return alerting.silence_create(organization=organization, created_by=request.user, data=request.data)

    @extend_schema(
        request=serializers.SilenceInputSerializer,
        responses={201: serializers.SilenceSerializer, 400: _ERROR, 403: _ERROR},
        summary="Create a silence",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class SilenceDetailView(APIView):
    """One silence: read, or expire it now (DELETE)."""

    @extend_schema(responses={200: serializers.SilenceSerializer}, summary="Get a silence")
    def get(self, request: Request, silence_id: int) -> Response:
        silence = _get(selectors.silence_list_for_user(user=request.user), silence_id, "silence")
        return Response(serializers.SilenceSerializer(silence).data)

    @extend_schema(responses={200: serializers.SilenceSerializer}, summary="Expire a silence now")
    def delete(self, request: Request, silence_id: int) -> Response:
        silence = _get(selectors.silence_list_for_user(user=request.user), silence_id, "silence")
        _check_edit(request, silence.organization_id)
        return Response(serializers.SilenceSerializer(alerting.silence_expire(silence=silence)).data)


class MuteTimingListCreateView(_CreateMixin, ListAPIView):
    """Mute timings of your organisations; create one."""

    serializer_class = serializers.MuteTimingSerializer
    output = serializers.MuteTimingSerializer

    def get_queryset(self):
        return selectors.mute_timing_list_for_user(user=self.request.user)

    def create(self, request, organization):
        return alerting.mute_timing_create(organization=organization, data=request.data)

    @extend_schema(
        request=serializers.MuteTimingInputSerializer,
        responses={201: serializers.MuteTimingSerializer, 400: _ERROR, 403: _ERROR, 409: _ERROR},
        summary="Create a mute timing",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class MuteTimingDetailView(APIView):
    """One mute timing: read, change (name, intervals), delete (refused while a policy uses it)."""

    def _object(self, request, timing_id, *, edit=False):
        timing = _get(selectors.mute_timing_list_for_user(user=request.user), timing_id, "mute timing")
        if edit:
            _check_edit(request, timing.organization_id)
        return timing

    @extend_schema(responses={200: serializers.MuteTimingSerializer}, summary="Get a mute timing")
    def get(self, request: Request, timing_id: int) -> Response:
        return Response(serializers.MuteTimingSerializer(self._object(request, timing_id)).data)

    @extend_schema(
        request=serializers.MuteTimingInputSerializer,
        responses={200: serializers.MuteTimingSerializer, 400: _ERROR, 403: _ERROR, 409: _ERROR},
        summary="Change a mute timing",
    )
    def patch(self, request: Request, timing_id: int) -> Response:
        timing = self._object(request, timing_id, edit=True)
        try:
            timing = alerting.mute_timing_update(timing=timing, data=request.data)
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(serializers.MuteTimingSerializer(timing).data)

    @extend_schema(responses={204: None, 403: _ERROR, 409: _ERROR}, summary="Delete a mute timing")
    def delete(self, request: Request, timing_id: int) -> Response:
        try:
            alerting.mute_timing_delete(timing=self._object(request, timing_id, edit=True))
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationPolicyListCreateView(_CreateMixin, ListAPIView):
    """Notification policy nodes of your organisations (parent links form the tree); add one."""

    serializer_class = serializers.NotificationPolicySerializer
    output = serializers.NotificationPolicySerializer

    def get_queryset(self):
        return selectors.notification_policy_list_for_user(user=self.request.user)

    def create(self, request, organization):
        return alerting.notification_policy_create(organization=organization, data=request.data)

    @extend_schema(
        request=serializers.NotificationPolicyInputSerializer,
        responses={201: serializers.NotificationPolicySerializer, 400: _ERROR, 403: _ERROR},
        summary="Add a notification policy",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class NotificationPolicyDetailView(APIView):
    """One policy node: read, change, delete (with its children)."""

    def _object(self, request, policy_id, *, edit=False):
        policy = _get(selectors.notification_policy_list_for_user(user=request.user), policy_id, "policy")
        if edit:
            _check_edit(request, policy.organization_id)
        return policy

    @extend_schema(responses={200: serializers.NotificationPolicySerializer}, summary="Get a notification policy")
    def get(self, request: Request, policy_id: int) -> Response:
        return Response(serializers.NotificationPolicySerializer(self._object(request, policy_id)).data)

    @extend_schema(
        request=serializers.NotificationPolicyInputSerializer,
        responses={200: serializers.NotificationPolicySerializer, 400: _ERROR, 403: _ERROR},
        summary="Change a notification policy",
    )
    def patch(self, request: Request, policy_id: int) -> Response:
        policy = self._object(request, policy_id, edit=True)
        try:
            policy = alerting.notification_policy_update(policy=policy, data=request.data)
        except alerting.AlertingError as error:
            return _refusal(error)
        return Response(serializers.NotificationPolicySerializer(policy).data)

    @extend_schema(responses={204: None}, summary="Delete a notification policy and its children")
    def delete(self, request: Request, policy_id: int) -> Response:
        alerting.notification_policy_delete(policy=self._object(request, policy_id, edit=True))
        return Response(status=status.HTTP_204_NO_CONTENT)
