"""Mapping by CSV (issue #15): a verdict for every line before anything is permanent; a file
that cannot be read changes nothing and says why."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from staging.models import ChangeEvent, EventKind, StagedProject
from staging.services.csv_mapping import CsvRefused, csv_map_plan
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory

URL = "/portfolio/integration/erp/projects/map/csv/"


@pytest.fixture
def books(personas: Personas) -> dict[str, Any]:
    company = personas.company
    customers = {
        "cascade": QboCustomerFactory(
            company=company, qbo_id="41", display_name="Cascade County Schools"
        ),
        "harbor": QboCustomerFactory(company=company, qbo_id="42", display_name="Harbor Holdings"),
        "old": QboCustomerFactory(
            company=company, qbo_id="43", display_name="Old Co", active=False
        ),
        "job": QboCustomerFactory(
            company=company, qbo_id="44", display_name="A Job", is_job=True, parent_qbo_id="41"
        ),
    }
    projects = {
        n: StagedProjectFactory(
            company=company, number=f"P-{n}", client_name="Cascade County Schools"
        )
        for n in range(1, 9)
    }
    StagedProject.objects.filter(pk=projects[7].pk).update(qbo_customer=customers["harbor"])
    StagedProject.objects.filter(pk=projects[8].pk).update(qbo_customer=customers["cascade"])
    return {"customers": customers, "projects": projects}


FILE = (
    "project_number,qbo_customer\n"
    "P-1,Cascade County Schools\n"  # 2 ok, by name
    "P-2,  cascade   COUNTY schools \n"  # 3 ok, as QBO compares names
    "P-3,42\n"  # 4 ok, by Id
    "P-1,Harbor Holdings\n"  # 5 the same project as line 2
    "P-99,Cascade County Schools\n"  # 6 unknown project
    "P-4,Nobody Inc\n"  # 7 unknown customer
    "P-5,Old Co\n"  # 8 inactive
    "P-6,A Job\n"  # 9 a sub-customer
    "P-7,Cascade County Schools\n"  # 10 mapped to another
    "P-8,Cascade County Schools\n"  # 11 mapped to this one already
    'P-4,"=HYPERLINK(""http://x"")"\n'  # 12 a formula
    "\n"
    ",Cascade County Schools\n"  # 14 no number
)


def test_every_line_gets_its_verdict_and_nothing_is_written(
    personas: Personas, books: dict[str, Any]
) -> None:
    plan = csv_map_plan(company=personas.company, data=FILE.encode())

    verdicts = {line.line: line.verdict for line in plan.lines}
    assert [n for n, v in verdicts.items() if v == "ok"] == [2, 3, 4]
    assert verdicts[5] == "The same project as line 2."
    assert verdicts[6].startswith("Unknown project")
    assert verdicts[7].startswith("Unknown QBO customer")
    assert verdicts[8] == "“Old Co” is inactive in QuickBooks."
    assert verdicts[9].startswith("“A Job” is a sub-customer")
    assert verdicts[10] == "Already mapped to “Harbor Holdings”: a mapping is permanent."
    assert verdicts[11] == "Already mapped to this customer: nothing to do."
    assert verdicts[12].startswith("A spreadsheet formula")
    assert verdicts[14] == "No project number."
    projects = books["projects"]
    assert plan.pairs == {
        projects[1].pk: books["customers"]["cascade"].pk,
        projects[2].pk: books["customers"]["cascade"].pk,
        projects[3].pk: books["customers"]["harbor"].pk,
    }
    assert StagedProject.objects.filter(qbo_customer__isnull=False).count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        ("project_number;qbo_customer\nP-1;Café".encode("cp1252"), "not UTF-8"),
        (b"name,customer_id\nP-1,41\n", "must name the columns project_number and qbo_customer"),
        (b"PK\x03\x04\x00\x00binary", "holds binary data"),
        (b"project_number,qbo_customer\n" + b"P-1,41\n" * 200_000, "larger than 1 MB"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_with_a_reason(
    personas: Personas, books: dict[str, Any], data: bytes, message: str
) -> None:
    with pytest.raises(CsvRefused, match=message):
        csv_map_plan(company=personas.company, data=data)


def test_semicolons_and_a_bom_are_read_as_spreadsheets_write_them(
    personas: Personas, books: dict[str, Any]
) -> None:
    data = "\ufeffProject Number;QBO Customer\nP-1;Cascade County Schools\n".encode()
    plan = csv_map_plan(company=personas.company, data=data)
    assert [line.verdict for line in plan.lines] == ["ok"]


def test_upload_preview_then_confirm_maps_only_the_ok_lines(
    personas: Personas, books: dict[str, Any]
) -> None:
    client = personas.client_for(personas.operator)
    preview = client.post(URL, {"file": SimpleUploadedFile("map.csv", FILE.encode())})
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "3 of 12 lines can be mapped" in " ".join(text.split())  # the blank line is skipped
    assert "Map 3 projects permanently" in text
    assert StagedProject.objects.filter(qbo_customer__isnull=False).count() == 2
    token = preview.context["token"]

    done = client.post(reverse("portfolio:projects_map_csv_apply"), {"token": token}, follow=True)
    assert "Mapped 3 projects permanently to 2 customers." in done.content.decode()
    projects = books["projects"]
    for n, customer in ((1, "cascade"), (2, "cascade"), (3, "harbor")):
        projects[n].refresh_from_db()
        assert projects[n].qbo_customer == books["customers"][customer]
    events = ChangeEvent.objects.filter(kind=EventKind.MAPPED)
    assert events.count() == 3 and all("CSV file" in e.summary for e in events)

    # A tampered or replayed token maps nothing more.
    bad = client.post(
        reverse("portfolio:projects_map_csv_apply"), {"token": token + "x"}, follow=True
    )
    assert "upload the file again" in bad.content.decode()


def test_a_bad_upload_shows_the_reason_on_the_page(
    personas: Personas, books: dict[str, Any]
) -> None:
    client = personas.client_for(personas.operator)
    answer = client.post(URL, {"file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")})
    assert answer.status_code == 422
    assert "must name the columns" in answer.content.decode()
    assert "Nothing was changed." in answer.content.decode()
    nothing = client.post(URL, {})
    assert nothing.status_code == 422 and "Choose a CSV file" in nothing.content.decode()


def test_the_template_lists_unmapped_projects_with_suggestions_and_is_safe_to_open(
    personas: Personas, books: dict[str, Any]
) -> None:
    StagedProject.objects.filter(pk=books["projects"][6].pk).update(name="=cmd|' /C calc'!A0")
    client = personas.client_for(personas.operator)
    answer = client.get(reverse("portfolio:projects_map_csv_template"))
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["project_number", "qbo_customer", "project_name", "linarc_client"]
    assert [r[0] for r in rows[1:]] == [f"P-{n}" for n in range(1, 7)]
    assert {r[1] for r in rows[1:]} == {"Cascade County Schools"}  # the suggestion
    assert rows[6][2] == "'=cmd|' /C calc'!A0"  # not a formula when opened


def test_the_command_checks_then_maps_with_yes(
    personas: Personas, books: dict[str, Any], tmp_path: Any
) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    path = tmp_path / "map.csv"
    path.write_text(FILE)
    out = StringIO()
    call_command(
        "map_from_csv", "--company", personas.company.slug, "--as", "otto", str(path), stdout=out
    )
    assert "3 of 12 lines can be mapped" in out.getvalue()
    assert "line 6: P-99 → Cascade County Schools: Unknown project" in out.getvalue()
    assert StagedProject.objects.filter(qbo_customer__isnull=False).count() == 2

    out = StringIO()
    call_command(
        "map_from_csv",
        "--company",
        personas.company.slug,
        "--as",
        "otto",
        str(path),
        "--yes",
        stdout=out,
    )
    assert "Mapped 3 projects permanently to 2 customers." in out.getvalue()
    with pytest.raises(CommandError, match="is not an Operator or Admin"):
        call_command("map_from_csv", "--company", personas.company.slug, "--as", "vera", str(path))
