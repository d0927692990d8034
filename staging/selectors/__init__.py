"""Reads for the screens, always scoped to a company. They return querysets, model instances
and plain dataclasses; shaping them for a page (escaping, labels, CSV cells, redaction) is
the presenters' work (staging.presenters).

The Projects list must stay fast with 100,000 staged rows, so every read issues a fixed
number of queries and none reads every row:

* ``filters``: what the list shows (status chip, failure codes, search), from the URL, and
  which rows match it;
* ``counts``: rows per status for the chips and the pager, bounded for a search;
* ``projects``: one page of the list, and the rows a bulk action names;
* ``customers``: the QBO customer and job drop-downs;
* ``history``: a project's Change History;
* ``runs``: the sync run's progress bar, recent imports, staged Linarc ids.

The names are re-exported here, so ``from staging.selectors import project_page`` reads
as before. A constant is read by its own module: patch it there (e.g.
``staging.selectors.counts.SEARCH_COUNT_LIMIT``).
"""

from __future__ import annotations

from staging.selectors.counts import (
    SEARCH_COUNT_LIMIT,
    StatusCount,
    StatusCounts,
    project_status_counts,
    status_chips,
)
from staging.selectors.customers import (
    CUSTOMER_OPTIONS_LIMIT,
    JobOption,
    qbo_customer_options,
    qbo_job_for_project,
    qbo_job_options,
    qbo_job_search,
)
from staging.selectors.filters import (
    DEFAULT_SORT,
    MAX_SEARCH_LENGTH,
    MAX_SELECTED_IDS,
    NO_CODE,
    SORT_COLUMNS,
    STATUS_ORDER,
    ProjectFilters,
    codes_param,
    parse_project_ids,
    project_filters_from,
    projects_matching,
    projects_selected,
)
from staging.selectors.history import FieldChange, HistoryEntry, project_history
from staging.selectors.projects import (
    DEEP_PAGE_OFFSET,
    LIST_COLUMNS,
    PAGE_SIZE,
    PageLink,
    ProjectPage,
    project_page,
    projects_by_ids,
)
from staging.selectors.runs import (
    RECENT_RUN_WINDOW,
    import_runs_recent,
    latest_sync_run,
    staged_linarc_ids,
)

__all__ = [
    "CUSTOMER_OPTIONS_LIMIT",
    "DEEP_PAGE_OFFSET",
    "DEFAULT_SORT",
    "LIST_COLUMNS",
    "MAX_SEARCH_LENGTH",
    "MAX_SELECTED_IDS",
    "NO_CODE",
    "PAGE_SIZE",
    "RECENT_RUN_WINDOW",
    "SEARCH_COUNT_LIMIT",
    "SORT_COLUMNS",
    "STATUS_ORDER",
    "FieldChange",
    "HistoryEntry",
    "JobOption",
    "PageLink",
    "ProjectFilters",
    "ProjectPage",
    "StatusCount",
    "StatusCounts",
    "codes_param",
    "import_runs_recent",
    "latest_sync_run",
    "parse_project_ids",
    "project_filters_from",
    "project_history",
    "project_page",
    "project_status_counts",
    "projects_by_ids",
    "projects_matching",
    "projects_selected",
    "qbo_customer_options",
    "qbo_job_for_project",
    "qbo_job_options",
    "qbo_job_search",
    "staged_linarc_ids",
    "status_chips",
]
