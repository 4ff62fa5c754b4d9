from django.contrib import admin

from apps.access.models import ApiToken, Membership, Organization


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "status", "created_at", "expires_at", "last_used_at"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "user__username", "key_prefix"]
    readonly_fields = ["key_prefix", "key_hash", "created_at", "last_used_at"]
    autocomplete_fields = ["user"]

    def has_add_permission(self, request) -> bool:
        # The secret must be shown to its owner once; tokens are created from the tokens page or the CLI.
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
