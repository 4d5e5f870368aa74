from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    """Stable pages while records are added: `?cursor=` from `next` / `previous`."""

    ordering = "-created_at"  # every listed model has it; views may order otherwise
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        return (*ordering, "pk") if "pk" not in ordering and "-pk" not in ordering else ordering

    def get_page_size(self, request) -> int:
        """The page size asked for, refused (not ignored) when it is not one whole number from
        1 to the maximum: a client that misspells it should learn so."""
        asked = request.query_params.getlist(self.page_size_query_param)
        if not asked:
            return self.page_size
        if len(asked) > 1 or not asked[0].isdigit() or not 1 <= int(asked[0]) <= self.max_page_size:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"give one whole number from 1 to {self.max_page_size}"
                    ]
                }
            )
        return int(asked[0])

    def _get_position_from_instance(self, instance, ordering) -> str:
        """The cursor's position: the first ordering field's value, following relations
        (`user__username`) as the database did."""
        value = instance
        for part in ordering[0].lstrip("-").split("__"):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return str(value)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters
