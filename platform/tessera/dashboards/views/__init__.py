"""The pages, one module per area. Thin: each view finds what it shows through
`dashboards.selectors` (scoped by the permission layer the API uses; the reads log what they
return), asks `accounts.permissions` before it acts, and calls the same services as the API.
Parts of a page (a visit, a job, a result) are also answered alone, for htmx to swap in without
a reload."""
