"""Files and pictures: an uploaded file, a DICOM preview, a result's heatmap."""

import logging
import re

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
    wanted = _byte_range(request.headers.get("Range", ""), size=asset.size_bytes)
    if wanted is not None:
        return _part(content, wanted, size=asset.size_bytes, content_type=asset.content_type)
    response = FileResponse(
        content,
        as_attachment=asset.kind == MediaKind.DICOM,
        filename=asset.original_filename or f"{asset.kind}-{asset.pk}",
        content_type=asset.content_type,
    )
    response["Accept-Ranges"] = "bytes"
    return response


_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str, *, size: int) -> tuple[int, int] | None:
    """The one byte range a player asks for (`bytes=500-`, `bytes=500-999`, `bytes=-500`), as
    (first, last) within the file; None for no range, several, or one past the end (the whole
    file is answered, as HTTP allows)."""
    match = _BYTE_RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", "") or size == 0:
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        return max(size - int(last), 0), size - 1
    if int(first) >= size or (last and int(last) < int(first)):
        return None
    return int(first), min(int(last), size - 1) if last else size - 1


def _part(content, wanted: tuple[int, int], *, size: int, content_type: str) -> HttpResponse:
    """206 Partial Content: what lets a player seek (a transcript's line plays from its time)."""
    first, last = wanted
    with content:
        content.seek(first)
        body = content.read(last - first + 1)
    response = HttpResponse(body, status=206, content_type=content_type)
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response


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
