"""Files and pictures: an uploaded file, a DICOM preview, a result's heatmap."""

import logging

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from mlcore.errors import InputError
from tessera.dashboards import selectors
from tessera.dashboards.access import visible_or_404
from tessera.jobs.models import AnalysisResult
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.storage import StoredContentCorrupted

logger = logging.getLogger(__name__)


def _visible_media(request: HttpRequest, pk: int) -> MediaAsset:
    return visible_or_404(MediaAsset, request, pk)


@login_required
@require_GET
def media_file(request: HttpRequest, pk: int) -> FileResponse:
    """The uploaded file, to whoever may read its organization's records; audio and text play
    or show in the page, DICOM downloads."""
    asset = _visible_media(request, pk)
    try:
        content = selectors.media_opened(asset)
    except StoredContentCorrupted:
        return _damaged(asset)
    return FileResponse(
        content,
        as_attachment=asset.kind == MediaKind.DICOM,
        filename=asset.original_filename or f"{asset.kind}-{asset.pk}",
        content_type=asset.content_type,
    )


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def media_preview(request: HttpRequest, pk: int) -> HttpResponse:
    asset = _visible_media(request, pk)
    if asset.kind != MediaKind.DICOM:
        raise Http404
    try:
        picture = selectors.dicom_preview(asset)
    except StoredContentCorrupted:
        return _damaged(asset)
    except InputError as error:
        return HttpResponse(
            f"This image cannot be shown: {error}", status=422, content_type="text/plain"
        )
    return HttpResponse(picture, content_type="image/png")


@login_required
@require_GET
def media_transcript(request: HttpRequest, pk: int) -> HttpResponse:
    """A recording's transcript, for its card to swap in while it is being made."""
    transcript = selectors.transcript_shown(user=request.user, media_pk=pk)
    return render(request, "dashboards/parts/transcript.html", {"transcript": transcript})


def _damaged(asset: MediaAsset) -> HttpResponse:
    logger.error("stored media %s failed its integrity check", asset.pk)
    return HttpResponse(
        "This file is damaged: its content no longer matches the checksum taken at upload. "
        "It was not sent. Please tell your administrator.",
        status=500,
        content_type="text/plain",
    )


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def result_heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    result = visible_or_404(AnalysisResult, request, pk)
    if not result.explanation.get("heatmap"):
        raise Http404
    return HttpResponse(selectors.heatmap_shown(result), content_type="image/png")
