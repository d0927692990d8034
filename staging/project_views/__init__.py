"""The Projects tab, one module per seam:

- `table`: the parts of the table beyond its rows (row URLs, sort headers, chips, pager);
- `listing`: the list page, the poll while rows are Queued, and the bulk actions on a
  selection (Select All, Sync to QBO and its preview, Retry all failed);
- `bulk_map`: *Map selected…*, its confirmation and the mapping of many rows at once;
- `csv_map`: mapping by CSV upload (preview with a verdict per line, then confirm);
- `rows`: the actions of one row (the QBO Customer picker and permanent mapping, retry);
- `drawers`: Change History (and its CSV), Json Script, Manual Mapping.

Views stay thin: authorise with `company_required(role)`, look objects up inside the current
company (another company's id answers 404), validate, call ONE service or selector, then
answer with `integrations.http.render_page_or_partial` (HTMX gets the partial) or redirect a
plain form post. Errors keep honest codes: 409 for a permanent mapping that exists or a row
that cannot be retried, 422 for a bad choice; htmx swaps those answers into the row or
drawer (`responseHandling` in templates/base.html).
"""
