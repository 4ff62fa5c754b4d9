"""Pages for managing your API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.access.models import Organization, TokenScope
from apps.access.selectors import api_token_list, organization_list_for_user
from apps.access.services import ApiTokenRefused, api_token_create, api_token_expiry_from_days, api_token_revoke

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. 'notebook' or 'telegraf on press-7'.",
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "notebook"}),
    )
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", required=False, label="Expires in")
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        initial=[TokenScope.READ],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="read (always): queries and lists; write: create and change; admin: tokens and the audit log.",
    )
    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), to_field_name="slug", required=False)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        organizations = organization_list_for_user(user=user)
        self.fields["organization"].queryset = organizations
        if organizations.count() <= 1:
            del self.fields["organization"]  # the only one is implied


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """List tokens and create one; a new token's secret is shown on this response only."""
    created_secret = None
    form = ApiTokenForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            token, created_secret = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=api_token_expiry_from_days(int(days) if days else None),
                scopes=form.cleaned_data["scopes"] or [TokenScope.READ],
                organization=form.cleaned_data.get("organization"),
            )
        except ApiTokenRefused as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(request, f"Token '{token.name}' created. Copy it now: it will not be shown again.")
            form = ApiTokenForm(user=request.user)
    return render(
        request,
        "access/api_tokens.html",
        {"form": form, "tokens": api_token_list(user=request.user), "created_secret": created_secret},
    )


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the signed-in user's tokens."""
    token = get_object_or_404(api_token_list(user=request.user), pk=token_id)
    api_token_revoke(token=token)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("api-tokens")
