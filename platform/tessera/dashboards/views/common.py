"""Helpers every page module shares."""

from django.http import HttpRequest
from django.urls import reverse

from tessera.records.kinds import kind_of


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def sentence(message: str) -> str:
    message = message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def subject_url(subject) -> str:
    return reverse(kind_of(subject).subject_page, args=[subject.pk])
