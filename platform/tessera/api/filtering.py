"""Filters of the list endpoints: django-filter, refusing what it would silently ignore, so a
client that misspells a filter's value learns so instead of getting every row."""

from django.db.models import Model
from django_filters import BooleanFilter, CharFilter, FilterSet, ModelChoiceFilter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from tessera.jobs.models import AnalysisJob
from tessera.records.kinds import KINDS
from tessera.records.models import MediaAsset
from tessera.reports.models import Report

BOOLEAN_VALUES = ("true", "false")
# (view class, model) → the FilterSet built from the view's `filterset_fields`.
_BUILT: dict[tuple[type, type[Model]], type[FilterSet] | None] = {}


class StrictFilterBackend(DjangoFilterBackend):
    """A filter given twice, a filter of ids, choices or yes/no given no value, or a yes/no
    filter given something else than true or false, is a 400 naming the filter. (An empty
    text filter is a value like any other.)"""

    def get_filterset_class(self, view, queryset=None):
        """As django-filter's, but a view's FilterSet of its `filterset_fields` is built once
        per view, not on every request."""
        if getattr(view, "filterset_class", None) or queryset is None:
            return super().get_filterset_class(view, queryset)
        key = (type(view), queryset.model)
        if key not in _BUILT:
            _BUILT[key] = super().get_filterset_class(view, queryset)
        return _BUILT[key]

    def filter_queryset(self, request, queryset, view):
        if not self._given(self.get_filterset_class(view, queryset), request):
            return queryset  # nothing to check, nothing to apply
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            errors = {}
            for name, declared in filterset.filters.items():
                values = request.query_params.getlist(name)
                if len(values) > 1:
                    errors[name] = ["give this filter once"]
                elif values == [""] and not isinstance(declared, CharFilter):
                    errors[name] = ["give this filter a value, or leave it out"]
                elif (
                    values
                    and isinstance(declared, BooleanFilter)
                    and values[0] not in BOOLEAN_VALUES
                ):
                    errors[name] = ["true or false"]
            if errors:
                raise ValidationError(errors)
        return super().filter_queryset(request, queryset, view)

    @staticmethod
    def _given(chosen: type[FilterSet] | None, request) -> bool:
        """Whether the request names any of the FilterSet's filters (a range filter's
        parameters carry its name and a suffix: `created_at_after`)."""
        if chosen is None:
            return False
        return any(
            parameter == name or parameter.startswith(f"{name}_")
            for parameter in request.query_params
            for name in chosen.base_filters
        )


def filterset(model: type[Model], fields: list[str], **declared) -> type[FilterSet]:
    """A FilterSet of `model`'s `fields`, and the filters `declared` by name."""
    meta = type("Meta", (), {"model": model, "fields": fields})
    return type(f"{model.__name__}FilterSet", (FilterSet,), {**declared, "Meta": meta})


def by_visit() -> dict[str, ModelChoiceFilter]:
    """`encounter=12` or `learning_session=7`, on rows that name their visit by its key."""
    return {
        kind.visit_field: ModelChoiceFilter(
            field_name=kind.to_visit, queryset=kind.visit_model.objects.all()
        )
        for kind in KINDS
    }


def by_subject() -> dict[str, ModelChoiceFilter]:
    """`patient=3` or `student=5`, on rows that name their person by its key."""
    return {
        kind.subject_field: ModelChoiceFilter(
            field_name=kind.to_subject, queryset=kind.subject_model.objects.all()
        )
        for kind in KINDS
    }


MEDIA_FILTERS = filterset(MediaAsset, ["kind"], **by_visit())
JOB_FILTERS = filterset(AnalysisJob, ["status", "task"], **by_visit())
REPORT_FILTERS = filterset(Report, ["kind", "status", "cohort"], **by_subject())
