from django.contrib import admin

from apps.sso.models import GroupRule, ManagedMembership, OidcIdentity, ServiceClient


@admin.register(GroupRule)
class GroupRuleAdmin(admin.ModelAdmin):
    list_display = ["group", "organization", "team", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["group", "organization__slug", "team"]


@admin.register(OidcIdentity)
class OidcIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "subject", "issuer", "last_sign_in_at"]
    search_fields = ["user__username", "user__email", "subject"]
    readonly_fields = ["issuer", "subject", "groups", "created_at", "last_sign_in_at"]
    autocomplete_fields = ["user"]


@admin.register(ManagedMembership)
class ManagedMembershipAdmin(admin.ModelAdmin):
    list_display = ["membership", "groups", "updated_at"]
    readonly_fields = ["membership", "groups", "updated_at"]

    def has_add_permission(self, request) -> bool:
        # Only sign-ins create these; deleting one hands the membership over to manual management.
        return False


@admin.register(ServiceClient)
class ServiceClientAdmin(admin.ModelAdmin):
    list_display = ["client_id", "user", "organization", "scopes", "enabled", "created_at"]
    list_filter = ["enabled", "organization"]
    search_fields = ["client_id", "user__username"]
    autocomplete_fields = ["user"]
