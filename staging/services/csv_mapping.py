"""Mapping by CSV: a file of project number → QBO customer (its name or its Id), checked
line by line before anything becomes permanent.

The preview gives every line a verdict; only the lines marked *ok* are mapped, after the
person confirms, through the same one-statement mapping as *Map selected…*
(``staging.services.bulk_mapping``). A file that cannot be read as a whole (not UTF-8,
no header we know, too big, empty) is refused with a message and changes nothing.

Cells that start with ``=``, ``+``, ``-`` or ``@`` are what a spreadsheet saved as CSV
leaves of a formula; they are never taken as a name (OWASP on CSV injection:
https://owasp.org/www-community/attacks/CSV_Injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.signing import BadSignature, Signer
from django.db.models import Q

from integrations.errors import Refused
from integrations.models import Company, QboCustomer
from staging.models import StagedProject
from staging.services.suggestions import client_key, suggestions_for

MAX_CSV_BYTES = 1024 * 1024
MAX_CSV_LINES = 20_000
PROJECT_HEADERS = ("project number", "project_number", "number", "project")
CUSTOMER_HEADERS = ("qbo customer", "qbo_customer", "customer", "quickbooks customer")
TEMPLATE_HEADER = ("project_number", "qbo_customer", "project_name", "linarc_client")
FORMULA_STARTS = ("=", "+", "-", "@")
OK = "ok"
_SIGNER_SALT = "staging.csv-mapping"


class CsvRefused(Refused):
    """The file as a whole cannot be used; nothing was changed."""


@dataclass(frozen=True)
class CsvLine:
    line: int  # the line number in the file (the header is line 1)
    number: str
    customer_text: str
    verdict: str  # OK, or why the line is not mapped, for the person
    project_id: int | None = None
    customer_id: int | None = None
    project_name: str = ""
    customer_name: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == OK


@dataclass
class CsvPlan:
    lines: list[CsvLine] = field(default_factory=list)

    @property
    def ok_lines(self) -> list[CsvLine]:
        return [line for line in self.lines if line.ok]

    @property
    def pairs(self) -> dict[int, int]:
        """Project pk → customer pk of the lines to map."""
        return {
            line.project_id: line.customer_id
            for line in self.ok_lines
            if line.project_id is not None and line.customer_id is not None
        }


def csv_map_plan(*, company: Company, data: bytes) -> CsvPlan:
    """Every line of the file with its verdict; raises :class:`CsvRefused` for a file that
    cannot be read. Writes nothing."""
    rows = list(_rows(data))
    numbers = {number for _line, number, _customer in rows if number}
    projects = _projects_by_number(company, numbers)
    customers = _customers_for(company, {c for _l, _n, c in rows if c})
    plan = CsvPlan()
    first_line_of: dict[str, int] = {}
    for line, number, customer_text in rows:
        plan.lines.append(_verdict(line, number, customer_text, projects, customers, first_line_of))
    return plan


def _verdict(
    line: int,
    number: str,
    customer_text: str,
    projects: dict[str, list[StagedProject]],
    customers: dict[str, list[QboCustomer]],
    first_line_of: dict[str, int],
) -> CsvLine:
    base = CsvLine(line, number, customer_text, OK)
    if not number:
        return _with(base, "No project number.")
    if not customer_text:
        return _with(base, "No QBO customer: fill in a name or an Id.")
    if number.startswith(FORMULA_STARTS) or customer_text.startswith(FORMULA_STARTS):
        return _with(base, "A spreadsheet formula, not a value: save the values, not formulas.")
    if number.casefold() in first_line_of:
        return _with(base, f"The same project as line {first_line_of[number.casefold()]}.")
    first_line_of[number.casefold()] = line
    found = projects.get(number.casefold(), [])
    if not found:
        return _with(base, "Unknown project: no staged project has this number.")
    if len(found) > 1:
        return _with(base, f"{len(found)} staged projects have this number: map them by hand.")
    project = found[0]
    base = _with(base, OK, project_id=project.pk, project_name=project.name)
    matches = customers.get(customer_text.casefold(), []) or customers.get(
        client_key(customer_text), []
    )
    if not matches:
        return _with(base, "Unknown QBO customer: no cached customer has this name or Id.")
    if len(matches) > 1:
        return _with(base, "More than one QBO customer has this name: give its Id instead.")
    customer = matches[0]
    base = _with(base, OK, customer_id=customer.pk, customer_name=customer.display_name)
    if customer.is_job:
        return _with(base, f"“{customer.display_name}” is a sub-customer; give a top-level one.")
    if not customer.active or customer.deleted_in_qbo:
        return _with(base, f"“{customer.display_name}” is inactive in QuickBooks.")
    if project.qbo_customer_id == customer.pk:
        return _with(base, "Already mapped to this customer: nothing to do.")
    if project.qbo_customer_id is not None:
        assert project.qbo_customer is not None
        return _with(
            base,
            f"Already mapped to “{project.qbo_customer.display_name}”: a mapping is permanent.",
        )
    return base


def _with(line: CsvLine, verdict: str, **changes: object) -> CsvLine:
    return CsvLine(**{**line.__dict__, "verdict": verdict, **changes})


def _rows(data: bytes) -> Iterator[tuple[int, str, str]]:
    """(line number, project number, customer) of each data line."""
    if not data.strip():
        raise CsvRefused("The file is empty.")
    if len(data) > MAX_CSV_BYTES:
        raise CsvRefused(
            f"The file is larger than {MAX_CSV_BYTES // 1024 // 1024} MB: split it in parts."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvRefused(
            "The file is not UTF-8 text. In your spreadsheet, save it as “CSV UTF-8”."
        ) from None
    if "\x00" in text:
        raise CsvRefused("The file is not a CSV text file (it holds binary data).")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [cell.strip().casefold() for cell in next(reader, [])]
    project_col = _column(header, PROJECT_HEADERS)
    customer_col = _column(header, CUSTOMER_HEADERS)
    if project_col is None or customer_col is None:
        raise CsvRefused(
            "The first line must name the columns project_number and qbo_customer "
            "(download the template)."
        )
    count = 0
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if count > MAX_CSV_LINES:
            raise CsvRefused(f"The file has more than {MAX_CSV_LINES:,} lines: split it in parts.")
        yield line, _cell(cells, project_col), _cell(cells, customer_col)


def _column(header: list[str], names: Iterable[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _cell(cells: list[str], index: int) -> str:
    return " ".join(cells[index].split())[:500] if index < len(cells) else ""


def _projects_by_number(company: Company, numbers: set[str]) -> dict[str, list[StagedProject]]:
    found: dict[str, list[StagedProject]] = {}
    projects = (
        StagedProject.objects.filter(company=company, number__in=numbers)
        .select_related("qbo_customer")
        .only("pk", "number", "name", "client_name", "qbo_customer", "company_id")
    )
    for project in projects:
        found.setdefault(project.number.casefold(), []).append(project)
    return found


def _customers_for(company: Company, texts: set[str]) -> dict[str, list[QboCustomer]]:
    """Customers by Id (QBO's) and by name, as typed and as QBO compares names."""
    keys = {client_key(t) for t in texts}
    ids = {t for t in texts if t.isdigit()}
    customers = QboCustomer.objects.filter(company=company).filter(
        Q(search_name__in=keys) | Q(qbo_id__in=ids)
    )
    found: dict[str, list[QboCustomer]] = {}
    for customer in customers:
        if customer.qbo_id in ids:
            found.setdefault(customer.qbo_id, []).append(customer)
        found.setdefault(client_key(customer.display_name), []).append(customer)
    return found


def csv_template_rows(*, company: Company) -> Iterator[list[str]]:
    """The template: every unmapped project with its number, and its suggested customer
    prefilled where there is one (the person checks and completes the rest)."""
    yield list(TEMPLATE_HEADER)
    projects = StagedProject.objects.filter(company=company, qbo_customer__isnull=True).order_by(
        "number", "pk"
    )
    for chunk in _chunks(projects.iterator(chunk_size=2000), 2000):
        suggested = suggestions_for(company_id=company.pk, projects=chunk)
        for project in chunk:
            suggestion = suggested.get(project.pk)
            yield [
                project.number,
                suggestion.display_name if suggestion else "",
                project.name,
                project.client_name,
            ]


def _chunks(items: Iterator[StagedProject], size: int) -> Iterator[list[StagedProject]]:
    chunk: list[StagedProject] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pairs_sign(pairs: dict[int, int]) -> str:
    """The preview's lines to map, carried to the confirmation unaltered."""
    return Signer(salt=_SIGNER_SALT).sign_object(sorted(pairs.items()))


def pairs_unsign(token: str) -> dict[int, int]:
    try:
        items = Signer(salt=_SIGNER_SALT).unsign_object(token)
    except BadSignature:
        raise CsvRefused("The preview could not be read back: upload the file again.") from None
    return {int(project): int(customer) for project, customer in items}
