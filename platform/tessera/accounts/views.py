"""The two-factor pages: the code asked for after the password, and setting up an app."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from tessera.accounts import two_factor


class CodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^\d{6}$",
        label="6-digit code from your authenticator app",
        error_messages={"invalid": "Type the 6 digits your app shows now."},
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}
        ),
    )

    def clean_code(self) -> str:
        return self.cleaned_data["code"].replace(" ", "")


WRONG_CODE = (
    "That code is not right, or was already used. Wait for your app to show a new one and try "
    "again (after several wrong codes each try has to wait longer)."
)


@login_required
def verify(request: HttpRequest) -> HttpResponse:
    next_url = two_factor.safe_next(request)
    if request.user.is_verified() or not two_factor.standing(request.user).active:
        return redirect(next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if two_factor.verify(request, form.cleaned_data["code"]):
            return redirect(next_url)
        form.add_error("code", WRONG_CODE)
    return render(
        request,
        "registration/two_factor_verify.html",
        {"form": form, "next": next_url},
        status=422 if form.errors else 200,
    )


@login_required
def setup(request: HttpRequest) -> HttpResponse:
    """Set up (or replace) the authenticator app; turn it off where no organization requires
    it. Replacing or removing needs a verified session, like every other page."""
    user = request.user
    now = two_factor.standing(user)
    if request.method == "POST" and request.POST.get("action") == "remove":
        if now.required or not user.is_verified():
            messages.error(request, "Your organization requires two-factor sign-in.")
        else:
            two_factor.remove_device(user)
            messages.success(request, "Two-factor sign-in is off.")
        return redirect("settings")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if two_factor.confirm_device(request, form.cleaned_data["code"]):
            messages.success(request, "Two-factor sign-in is on: sign-in now asks for a code.")
            return redirect(two_factor.safe_next(request, default="/settings/"))
        form.add_error("code", WRONG_CODE)
    device = two_factor.pending_device(user)
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "qr_code": two_factor.qr_code_svg(device),
            "secret": two_factor.secret_for_typing(device),
            "required": now.required,
            "active": now.active,
            "next": two_factor.safe_next(request, default=""),
        },
        status=422 if form.errors else 200,
    )
