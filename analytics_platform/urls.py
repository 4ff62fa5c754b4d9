"""URL configuration: pages, the REST API under /api/v1/, health and metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from analytics_platform import demo_mail
from analytics_platform.health import healthz
from analytics_platform.metrics import metrics_view
from analytics_platform.views import home
from apps.access import api as access_api
from apps.access import organization_views, organizations_api
from apps.access import views as access_views
from apps.alerts import api as alerts_api
from apps.alerts import views as alerts_views
from apps.alerts.alerting import api as alerting_api
from apps.audit import api as audit_api
from apps.audit import views as audit_views
from apps.dashboards import annotations_api
from apps.dashboards import api as dashboards_api
from apps.dashboards import sharing_api as dashboard_sharing_api
from apps.dashboards import sharing_views as dashboard_sharing_views
from apps.dashboards import views as dashboards_views
from apps.ingestion import api as ingestion_api
from apps.ingestion import upload_api
from apps.reporting import api as reporting_api
from apps.reporting import sharing_api as reporting_sharing_api
from apps.reporting import views as reporting_views
from apps.sources import api as sources_api
from apps.sources import views as sources_views
from apps.sso import views as sso_views
from apps.storage import api as storage_api

admin.site.site_header = "Analytics Platform administration"
admin.site.site_title = "Analytics Platform admin"
admin.site.index_title = "Administration"

api_v1 = [
    path("me", access_api.MeView.as_view(), name="me"),
    path("tokens/", access_api.ApiTokenListCreateView.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", access_api.ApiTokenRevokeView.as_view(), name="api-token-detail"),
    path("organizations/", organizations_api.OrganizationListCreateView.as_view(), name="organization-list"),
    path("organizations/<slug:slug>/", organizations_api.OrganizationDetailView.as_view(), name="organization-detail"),
    path("organizations/<slug:slug>/members/", organizations_api.MemberListCreateView.as_view(), name="member-list"),
    path(
        "organizations/<slug:slug>/members/<str:username>/",
        organizations_api.MemberDetailView.as_view(),
        name="member-detail",
    ),
    path("organizations/<slug:slug>/teams/", organizations_api.TeamListCreateView.as_view(), name="team-list"),
    path(
        "organizations/<slug:slug>/teams/<slug:team_slug>/",
        organizations_api.TeamDetailView.as_view(),
        name="team-detail",
    ),
    path(
        "organizations/<slug:slug>/teams/<slug:team_slug>/members/",
        organizations_api.TeamMemberListCreateView.as_view(),
        name="team-member-list",
    ),
    path(
        "organizations/<slug:slug>/teams/<slug:team_slug>/members/<str:username>/",
        organizations_api.TeamMemberDetailView.as_view(),
        name="team-member-detail",
    ),
    path(
        "organizations/<slug:slug>/policies/", organizations_api.DataPolicyListCreateView.as_view(), name="policy-list"
    ),
    path(
        "organizations/<slug:slug>/policies/<int:policy_id>/",
        organizations_api.DataPolicyDetailView.as_view(),
        name="policy-detail",
    ),
    path("organizations/<slug:slug>/audit-log", audit_api.AuditLogView.as_view(), name="audit-log"),
    path("organizations/<slug:slug>/audit-log/export", audit_api.AuditLogExportView.as_view(), name="audit-log-export"),
    path("query", storage_api.QueryView.as_view(), name="query"),
    path("query/csv", storage_api.QueryCsvView.as_view(), name="query-csv"),
    path("series", storage_api.SeriesListView.as_view(), name="series-list"),
    path("series/metrics", storage_api.SeriesMetricsView.as_view(), name="series-metrics"),
    path("series/label-keys", storage_api.SeriesLabelKeysView.as_view(), name="series-label-keys"),
    path("series/label-values", storage_api.SeriesLabelValuesView.as_view(), name="series-label-values"),
    path("anomaly-detections/", alerts_api.AnomalyDetectionListCreateView.as_view(), name="anomaly-detection-list"),
    path(
        "anomaly-detections/<int:detection_id>/",
        alerts_api.AnomalyDetectionDetailView.as_view(),
        name="anomaly-detection-detail",
    ),
    path("anomaly-events", alerts_api.AnomalyEventListView.as_view(), name="anomaly-event-list"),
    path("contact-points/", alerting_api.ContactPointListCreateView.as_view(), name="contact-point-list"),
    path(
        "contact-points/<int:contact_point_id>/",
        alerting_api.ContactPointDetailView.as_view(),
        name="contact-point-detail",
    ),
    path(
        "contact-points/<int:contact_point_id>/test",
        alerting_api.ContactPointTestView.as_view(),
        name="contact-point-test",
    ),
    path("alert-rules/", alerting_api.AlertRuleListCreateView.as_view(), name="alert-rule-list"),
    path("alert-rules/backtest", alerting_api.AlertRuleBacktestView.as_view(), name="alert-rule-backtest"),
    path("alert-rules/<int:rule_id>/", alerting_api.AlertRuleDetailView.as_view(), name="alert-rule-detail"),
    path("alerts/", alerting_api.AlertInstanceListView.as_view(), name="alert-instance-list"),
    path("alerts/<int:instance_id>/", alerting_api.AlertInstanceDetailView.as_view(), name="alert-instance-detail"),
    path(
        "alerts/<int:instance_id>/acknowledge",
        alerting_api.AlertInstanceAcknowledgeView.as_view(),
        name="alert-instance-acknowledge",
    ),
    path(
        "alerts/<int:instance_id>/assign", alerting_api.AlertInstanceAssignView.as_view(), name="alert-instance-assign"
    ),
    path("alert-history/", alerting_api.StateHistoryView.as_view(), name="alert-history"),
    path("alert-notifications/", alerting_api.NotificationListView.as_view(), name="alert-notification-list"),
    path("silences/", alerting_api.SilenceListCreateView.as_view(), name="silence-list"),
    path("silences/<int:silence_id>/", alerting_api.SilenceDetailView.as_view(), name="silence-detail"),
    path("mute-timings/", alerting_api.MuteTimingListCreateView.as_view(), name="mute-timing-list"),
    path("mute-timings/<int:timing_id>/", alerting_api.MuteTimingDetailView.as_view(), name="mute-timing-detail"),
    path(
        "notification-policies/",
        alerting_api.NotificationPolicyListCreateView.as_view(),
        name="notification-policy-list",
    ),
    path(
        "notification-policies/<int:policy_id>/",
        alerting_api.NotificationPolicyDetailView.as_view(),
        name="notification-policy-detail",
    ),
    path("dashboards/", dashboards_api.DashboardListCreateView.as_view(), name="dashboard-list"),
    path("dashboards/import", dashboards_api.DashboardImportView.as_view(), name="dashboard-import"),
    path("dashboards/<slug:uid>/", dashboards_api.DashboardDetailView.as_view(), name="dashboard-detail"),
    path(
        "dashboards/<slug:uid>/versions/", dashboards_api.DashboardVersionListView.as_view(), name="dashboard-versions"
    ),
    path(
        "dashboards/<slug:uid>/versions/<int:version>",
        dashboards_api.DashboardVersionDetailView.as_view(),
        name="dashboard-version-detail",
    ),
    path(
        "dashboards/<slug:uid>/versions/<int:version>/restore",
        dashboards_api.DashboardRestoreView.as_view(),
        name="dashboard-restore",
    ),
    path(
        "dashboards/<slug:uid>/duplicate", dashboards_api.DashboardDuplicateView.as_view(), name="dashboard-duplicate"
    ),
    path(
        "dashboards/<slug:uid>/shares/", dashboard_sharing_api.DashboardShareListView.as_view(), name="dashboard-shares"
    ),
    path(
        "dashboards/<slug:uid>/shares/<str:kind>/<str:name>/",
        dashboard_sharing_api.DashboardShareDetailView.as_view(),
        name="dashboard-share-detail",
    ),
    path("dashboards/<slug:uid>/export", dashboards_api.DashboardExportView.as_view(), name="dashboard-export"),
    path(
        "dashboards/<slug:uid>/annotations/",
        annotations_api.AnnotationListCreateView.as_view(),
        name="dashboard-annotation-list",
    ),
    path(
        "dashboards/<slug:uid>/annotations/<int:annotation_id>",
        annotations_api.AnnotationDetailView.as_view(),
        name="dashboard-annotation-detail",
    ),
    path("reports/", reporting_api.ReportListCreateView.as_view(), name="report-list"),
    path("reports/<int:report_id>/", reporting_api.ReportDetailView.as_view(), name="report-detail"),
    path("reports/<int:report_id>/run", reporting_api.ReportRunView.as_view(), name="report-run"),
    path("reports/<int:report_id>/runs/", reporting_api.ReportRunListView.as_view(), name="report-runs"),
    path("reports/<int:report_id>/preview", reporting_api.ReportPreviewView.as_view(), name="report-preview"),
    path("reports/<int:report_id>/shares/", reporting_sharing_api.ReportShareListView.as_view(), name="report-shares"),
    path(
        "reports/<int:report_id>/shares/<str:kind>/<str:name>/",
        reporting_sharing_api.ReportShareDetailView.as_view(),
        name="report-share-detail",
    ),
    path("sources/", sources_api.SourceListCreateView.as_view(), name="source-list"),
    path("sources/<slug:slug>/", sources_api.SourceDetailView.as_view(), name="source-detail"),
    path("sources/<slug:slug>/pause", sources_api.SourcePauseView.as_view(), name="source-pause"),
    path("sources/<slug:slug>/resume", sources_api.SourceResumeView.as_view(), name="source-resume"),
    path("sources/<slug:slug>/keys/", sources_api.WriteKeyListCreateView.as_view(), name="source-key-list"),
    path(
        "sources/<slug:slug>/keys/<int:key_id>/revoke",
        sources_api.WriteKeyRevokeView.as_view(),
        name="source-key-revoke",
    ),
    path("sources/<slug:slug>/schemas/", sources_api.SchemaListCreateView.as_view(), name="source-schema-list"),
    path(
        "sources/<slug:slug>/schemas/<int:version>", sources_api.SchemaDetailView.as_view(), name="source-schema-detail"
    ),
    path("sources/<slug:slug>/stats", ingestion_api.SourceStatsView.as_view(), name="source-stats"),
    path("sources/<slug:slug>/ingest", ingestion_api.SourceIngestView.as_view(), name="source-ingest"),
    path("sources/<slug:slug>/dead-letters/", ingestion_api.DeadLetterListView.as_view(), name="dead-letter-list"),
    path(
        "sources/<slug:slug>/dead-letters/replay",
        ingestion_api.DeadLetterReplayView.as_view(),
        name="dead-letter-replay",
    ),
    path("sources/<slug:slug>/uploads/", upload_api.UploadListCreateView.as_view(), name="upload-list"),
    path("sources/<slug:slug>/uploads/<int:upload_id>", upload_api.UploadDetailView.as_view(), name="upload-detail"),
    path(
        "sources/<slug:slug>/uploads/<int:upload_id>/cancel",
        upload_api.UploadCancelView.as_view(),
        name="upload-cancel",
    ),
    path(
        "sources/<slug:slug>/uploads/<int:upload_id>/resume",
        upload_api.UploadResumeView.as_view(),
        name="upload-resume",
    ),
    path(
        "sources/<slug:slug>/dead-letters/<int:letter_id>",
        ingestion_api.DeadLetterDetailView.as_view(),
        name="dead-letter-detail",
    ),
    path(
        "sources/<slug:slug>/dead-letters/<int:letter_id>/replay",
        ingestion_api.DeadLetterEditReplayView.as_view(),
        name="dead-letter-edit-replay",
    ),
    path(
        "sources/<slug:slug>/dead-letters/discard",
        ingestion_api.DeadLetterDiscardView.as_view(),
        name="dead-letter-discard",
    ),
]

urlpatterns = [
    path("", home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", sso_views.logout, name="logout"),
    # Single sign-on (404 without OIDC_ISSUER); the names are mozilla-django-oidc's.
    path("oidc/authenticate/", sso_views.SignInView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", sso_views.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/tokens/", access_views.api_tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", access_views.api_token_revoke_view, name="api-token-revoke"),
    path("organizations/switch", organization_views.organization_switch, name="organization-switch"),
    path("organizations/<slug:slug>/members/", organization_views.organization_members, name="organization-members"),
    path("organizations/<slug:slug>/teams/", organization_views.organization_teams, name="organization-teams"),
    path("organizations/<slug:slug>/policies/", organization_views.organization_policies, name="organization-policies"),
    path("organizations/<slug:slug>/audit-log/", audit_views.audit_log_page, name="audit-log"),
    path("dashboards/", dashboards_views.dashboard_list, name="dashboard-list"),
    path("dashboards/<slug:uid>/", dashboards_views.dashboard_detail, name="dashboard-detail"),
    path("alerts/", alerts_views.alert_rule_list, name="alert-rules"),
    path("alerts/rules/new", alerts_views.alert_rule_editor, name="alert-rule-new"),
    path("alerts/rules/<int:rule_id>", alerts_views.alert_rule_detail, name="alert-rule-detail"),
    path("alerts/rules/<int:rule_id>/edit", alerts_views.alert_rule_editor, name="alert-rule-edit"),
    path("alerts/instances/", alerts_views.alert_instance_list, name="alert-instances"),
    path("alerts/silences/", alerts_views.silence_list, name="alert-silences"),
    path("alerts/mute-timings/", alerts_views.mute_timing_list, name="alert-mute-timings"),
    path("alerts/contact-points/", alerts_views.contact_point_list, name="alert-contact-points"),
    path("alerts/policies/", alerts_views.notification_policy_list, name="alert-policies"),
    path("dashboards/<slug:uid>/access/", dashboard_sharing_views.dashboard_access, name="dashboard-access"),
    path("sources/", sources_views.source_list, name="source-list"),
    path("sources/new/<slug:kind>/", sources_views.source_new, name="source-new"),
    path("sources/<slug:slug>/", sources_views.source_page, name="source-page"),
    path("sources/<slug:slug>/edit/", sources_views.source_edit, name="source-edit"),
    path("sources/<slug:slug>/keys/", sources_views.write_key_new, name="source-key-new"),
    path(
        "sources/<slug:slug>/keys/<int:key_id>/revoke/", sources_views.write_key_revoke_page, name="source-key-revoke"
    ),
    path("sources/<slug:slug>/dead-letters/", sources_views.dead_letter_list, name="source-dead-letters"),
    path(
        "sources/<slug:slug>/dead-letters/<int:letter_id>/replay/",
        sources_views.dead_letter_replay_page,
        name="source-dead-letter-replay",
    ),
    path(
        "sources/<slug:slug>/dead-letters/<slug:action>/",
        sources_views.dead_letters_bulk_page,
        name="source-dead-letters-bulk",
    ),
    path("reports/", reporting_views.report_list, name="report-list"),
    path("reports/new/", reporting_views.report_edit, name="report-new"),
    path("reports/<int:report_id>/", reporting_views.report_detail, name="report-detail"),
    path("reports/<int:report_id>/edit/", reporting_views.report_edit, name="report-edit"),
    path("reports/<int:report_id>/send/", reporting_views.report_send_now, name="report-send-now"),
    path("reports/<int:report_id>/preview/", reporting_views.report_preview_file, name="report-preview-file"),
    path("reports/download/<str:token>", reporting_views.report_download, name="report-download"),
    path("demo/mail/", demo_mail.demo_mail_list, name="demo-mail-list"),
    path("demo/mail/<str:key>/", demo_mail.demo_mail_detail, name="demo-mail-detail"),
    path("demo/mail/<str:key>/attachments/<int:index>", demo_mail.demo_mail_attachment, name="demo-mail-attachment"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, and ReDoc's template carries a nonce: both run
    # under the Content Security Policy, which refuses inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    # InfluxDB-compatible writes, at the paths InfluxDB clients and Telegraf use.
    path("api/v2/write", ingestion_api.InfluxV2WriteView.as_view(), name="influx-v2-write"),
    path("write", ingestion_api.InfluxV1WriteView.as_view(), name="influx-v1-write"),
    path("ping", ingestion_api.InfluxPingView.as_view(), name="influx-ping"),
    path("api/v2/ping", ingestion_api.InfluxPingView.as_view(), name="influx-v2-ping"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
]

# JSON errors under /api/ when Django answers itself (DEBUG off); ApiErrorsMiddleware covers the rest.
handler404 = "analytics_platform.api_errors.error_view_404"
handler500 = "analytics_platform.api_errors.error_view_500"
