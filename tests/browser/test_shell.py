from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.fixtures.browser import login, screenshot

pytestmark = pytest.mark.browser


def test_navigate_app_launcher_to_projects_tab(
    page: Any, live_server: Any, personas: Personas
) -> None:
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.get_by_text("App Launcher").click()
    page.get_by_role("menuitem", name="Portfolio").click()
    page.get_by_role("link", name="Integration", exact=True).click()
    page.get_by_role("link", name="ERP Integration").click()
    page.get_by_role("link", name="Projects", exact=True).click()
    assert page.url.endswith("/portfolio/integration/erp/projects/")
    tab = page.get_by_role("link", name="Projects", exact=True)
    assert tab.get_attribute("aria-current") == "page"
    assert page.locator("header").get_by_text(personas.company.name).is_visible()
    assert screenshot(page, "shell-projects-tab").stat().st_size > 0
