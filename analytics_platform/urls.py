"""URL configuration: pages, the REST API under /api/v1/, health and metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from analytics_platform.health import healthz
from analytics_platform.metrics import metrics_view
from analytics_platform.views import home
from apps.access import api as access_api
from apps.access import organization_views, organizations_api
from apps.access import views as access_views
from apps.alerts import api as alerts_api
from apps.audit import api as audit_api
from apps.audit import views as audit_views
from apps.dashboards import api as dashboards_api
from apps.dashboards import sharing_api as dashboard_sharing_api
from apps.dashboards import sharing_views as dashboard_sharing_views
from apps.dashboards import views as dashboards_views
from apps.ingestion import api as ingestion_api
from apps.ingestion import upload_api
from apps.sources import api as sources_api
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
    path("series/label-values", storage_api.SeriesLabelValuesView.as_view(), name="series-label-values"),
    path("anomaly-detections/", alerts_api.AnomalyDetectionListCreateView.as_view(), name="anomaly-detection-list"),
    path(
        "anomaly-detections/<int:detection_id>/",
        alerts_api.AnomalyDetectionDetailView.as_view(),
        name="anomaly-detection-detail",
    ),
    path("anomaly-events", alerts_api.AnomalyEventListView.as_view(), name="anomaly-event-list"),
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
        "sources/<slug:slug>/dead-letters/discard",
        ingestion_api.DeadLetterDiscardView.as_view(),
        name="dead-letter-discard",
    ),
]

urlpatterns = [
    path("", home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
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
    path("dashboards/<slug:uid>/access/", dashboard_sharing_views.dashboard_access, name="dashboard-access"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
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
