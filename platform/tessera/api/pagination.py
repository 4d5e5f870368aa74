from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    """Stable pages while records are added: `?cursor=` from `next` / `previous`."""

    ordering = "-created_at"  # every listed model has it; views may order otherwise
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        return (*ordering, "pk") if "pk" not in ordering and "-pk" not in ordering else ordering
