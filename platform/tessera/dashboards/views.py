from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tessera.dashboards.selectors import organization_summaries


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request, "dashboards/home.html", {"summaries": organization_summaries(user=request.user)}
    )
