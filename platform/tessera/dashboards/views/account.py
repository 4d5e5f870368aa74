"""A user's settings: their memberships, two-factor sign-in and API tokens."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tessera.accounts import two_factor
from tessera.accounts.models import ApiToken
from tessera.accounts.selectors import memberships_of
from tessera.accounts.services import issue_api_token, revoke_api_token
from tessera.dashboards.forms import TokenForm


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _, new_key = issue_api_token(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    return render(
        request,
        "dashboards/settings.html",
        {
            "form": form,
            "new_key": new_key,
            "tokens": ApiToken.objects.filter(user=request.user),
            "memberships": memberships_of(user=request.user).order_by("organization__name"),
            "two_factor": two_factor.standing(request.user),
        },
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    revoke_api_token(token=token)
    messages.success(request, f"Token “{token.name}” revoked: it no longer opens the API.")
    return redirect("settings")
