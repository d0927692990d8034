"""The Projects list's rows as the row partial shows them (``{% partialdef row %}`` in
staging/projects.html): each cell's text computed and HTML-escaped once, in Python, so the
template only substitutes strings. Rendering cell by cell in the template cost most of a
page's render time (docs/benchmarks.md).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.utils import formats, timezone
from django.utils.dates import MONTHS_3
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

from staging.models import StagedProject
from staging.services.suggestions import Suggestion
from staging.templatetags.bidi import strip_bidi_controls, strip_bidi_overrides


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """One row of the list as the row partial shows it: each cell's text computed and
    HTML-escaped once, here, so the template only substitutes. Django's template engine
    otherwise spent most of a page's render time per cell: trying a model instance as a
    dict first (an exception), formatting numbers and dates through the locale machinery,
    escaping. The text fields are SafeStrings because they ARE escaped (`_html`); never
    build one from unescaped input."""

    id: SafeString  # str(pk): a dozen attributes of the row carry it
    serial: SafeString  # "0" when unknown (a row rendered alone, without its position)
    serial_label: SafeString  # the serial, or "•"
    status: SafeString
    name: SafeString  # for attributes (data-project-name, aria-label): no bidi controls
    name_label: SafeString  # the name, or "(no name)"; the template puts it in a <bdi>
    number_label: SafeString  # the number, or the Linarc id
    client_name: SafeString
    project_status_label: SafeString  # or "—"
    start_label: SafeString  # "Jun 30, 2025", or "—"
    end_label: SafeString
    mapped: bool  # a permanent QBO customer is set
    customer_name: SafeString
    deleted_in_linarc: bool
    problems: tuple[SafeString, ...]  # each validation problem's message
    problems_label: SafeString  # "2 problems"
    status_reason: SafeString
    failure_code: SafeString
    intuit_tid: SafeString
    qbo_name: SafeString  # the name in QuickBooks, or the project's
    qbo_record_id: SafeString
    last_synced_label: SafeString  # "" when never synced
    queue_label: SafeString  # a Queued row's wait and estimate, else ""
    suggestion_id: SafeString  # an unmapped row's suggested customer (its pk), else ""
    suggestion_name: SafeString
    suggestion_reason: SafeString
    suggestion_differs: bool  # the suggested name is not the Linarc client's
    map_url: SafeString
    retry_url: SafeString
    customers_url: SafeString
    history_url: SafeString
    manual_map_url: SafeString  # with ?serial=
    json_url: SafeString

    def __getitem__(self, key: str) -> Any:
        # The template engine tries `row[key]` before `row.key`: answering it spares an
        # exception per cell.
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


def _html(value: Any) -> SafeString:
    """A JSON value as `{{ value }}` prints it: localised (numbers), then escaped."""
    return conditional_escape(formats.localize(value))


def _text(value: str) -> SafeString:
    # `_html` for the str columns (Django's `escape` is this, behind a lazy-string check),
    # without the bidi overrides (staging.templatetags.bidi).
    return SafeString(strip_bidi_overrides(html.escape(value)))


def _date_label(value: datetime | None, fmt: str) -> SafeString:
    # `{{ value|date:fmt|default:"—" }}`: an aware datetime is shown in the current zone.
    if value is None:
        return SafeString("—")
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return _text(formats.date_format(local, fmt) or "—")


def _day_label(value: date | None) -> SafeString:
    """`{{ value|date:"M j, Y"|default:"—" }}` for a date, spelled out as Django's DateFormat
    does it (M: MONTHS_3[month].title(), j: day, Y: "%04d" year). date_format parses the
    format string on every call: 100 dates a page cost a millisecond."""
    if value is None:
        return SafeString("—")
    return _text(f"{MONTHS_3[value.month].title()} {value.day}, {value.year:04d}")


def _problem_texts(problems: Any) -> tuple[SafeString, ...]:
    # `{% for problem in problems %}{{ problem.message|default:problem }}{% endfor %}`
    if not problems:
        return ()
    items = problems if isinstance(problems, list | tuple | dict | str) else [problems]
    return tuple(_html((p.get("message") or p) if isinstance(p, dict) else p) for p in items)


def project_row(
    project: StagedProject,
    *,
    serial: int,
    urls: Mapping[str, str],
    queue_label: str = "",
    suggestion: Suggestion | None = None,
) -> ProjectRow:
    """The display values of one listed row (`urls`: its links, see project_views.RowUrls;
    `queue_label`: a Queued row's wait, see staging.sync.queue.QueueEstimate;
    `suggestion`: an unmapped row's likely customer, see staging.services.suggestions)."""
    customer = project.qbo_customer
    problems = _problem_texts(project.problems)
    count = len(problems)
    serial_text = SafeString(str(serial))  # digits
    name = _text(project.name)
    # An attribute cannot hold a <bdi>, so the name there loses its bidi controls.
    attribute_name = _text(strip_bidi_controls(project.name))
    return ProjectRow(
        id=SafeString(str(project.pk)),  # digits
        serial=serial_text,
        serial_label=serial_text if serial else SafeString("•"),
        status=_text(project.status),
        name=attribute_name,
        name_label=name or SafeString("(no name)"),
        number_label=_text(project.number or project.linarc_id),
        client_name=_text(project.client_name),
        project_status_label=_text(project.project_status or "—"),
        start_label=_day_label(project.start_date),
        end_label=_day_label(project.end_date),
        mapped=customer is not None,
        customer_name=_text(customer.display_name if customer is not None else ""),
        deleted_in_linarc=project.deleted_in_linarc,
        problems=problems,
        problems_label=SafeString(f"{count} problem{'' if count == 1 else 's'}"),
        status_reason=_text(project.status_reason),
        failure_code=_text(project.failure_code),
        intuit_tid=_text(project.intuit_tid),
        qbo_name=_text(project.qbo_display_name) or name,
        qbo_record_id=_text(project.qbo_record_id),
        last_synced_label=(
            _date_label(project.last_synced_at, "M j, Y H:i")
            if project.last_synced_at
            else SafeString("")
        ),
        queue_label=_text(queue_label),
        suggestion_id=SafeString(str(suggestion.customer_id) if suggestion else ""),  # digits
        suggestion_name=_text(suggestion.display_name if suggestion else ""),
        suggestion_reason=_text(suggestion.reason if suggestion else ""),
        suggestion_differs=bool(suggestion and suggestion.differs_from_client),
        map_url=_text(urls["map"]),
        retry_url=_text(urls["retry"]),
        customers_url=_text(urls["customers"]),
        history_url=_text(urls["history"]),
        manual_map_url=_text(f"{urls['manual_map']}?serial={serial}"),
        json_url=_text(urls["json"]),
    )
