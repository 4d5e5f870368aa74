"""Filters of the list endpoints: django-filter, refusing what it would silently ignore, so a
client that misspells a filter's value learns so instead of getting every row."""

from django_filters import BooleanFilter, CharFilter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

BOOLEAN_VALUES = ("true", "false")


class StrictFilterBackend(DjangoFilterBackend):
    """A filter given twice, a filter of ids, choices or yes/no given no value, or a yes/no
    filter given something else than true or false, is a 400 naming the filter. (An empty
    text filter is a value like any other.)"""

    def filter_queryset(self, request, queryset, view):
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
