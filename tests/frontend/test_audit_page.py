"""The audit log page in Chromium, as an admin: entries newest first with their detail, the
action filter, paging, a volunteer turned away, and axe-core at laptop and phone size."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.auth import consent
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from tests.factories import PASSWORD
from tests.frontend.pages import axe_at_sizes, log_in, shot
from tests.live import seeded_site

Page = Any


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    def seed(session: Session, storage: Storage) -> None:
        for role in (UserRole.admin, UserRole.volunteer):
            user = auth.create_user(
                session=session, email=f"{role.value}@example.org", password=PASSWORD, role=role
            )
            user.consent_version = consent.VERSION
            session.add(user)
        for n in range(52):
            audit.record(
                session,
                AuditAction.case_import,
                object_type="case",
                object_id=f"c{n:04d}",
                detail={"project": "demo", "slices": 100 + n, "licence": "CC0", "consent": "open"},
            )
        audit.record(
            session,
            AuditAction.withdrawal,
            object_type="case",
            object_id="c9999",
            detail={"project": "demo", "reason": "owner asked", "slices": 40, "tasks": 40,
                    "answers": 12, "files": 60, "model_versions_flagged": 1},
        )  # fmt: skip
        audit.record(
            session,
            AuditAction.withdrawal,
            object_type="user",
            object_id="42",
            detail={"erasure": True, "annotations": 7, "assignments": 8, "tasks_refused": 3},
        )
        audit.record(
            session,
            AuditAction.consent_change,
            object_type="case",
            object_id="c9998",
            detail={"before": ["crowd_viewing", "research_sharing"], "after": ["research_sharing"],
                    "licence": "CC0", "tasks_opened": 0, "tasks_withheld": 5},
        )  # fmt: skip
        audit.record(
            session,
            AuditAction.suspension,
            object_type="rater",
            object_id="7",
            detail={"project_id": 1, "kind": "suspended", "reason": "spam", "by": "rules"},
        )

    with seeded_site(tmp_path_factory.mktemp("audit") / "var", seed) as served:
        yield served


def test_an_admin_reads_filters_and_pages_the_log(browser: Any, site: tuple[str, Path]) -> None:
    base, _data = site
    page, errors = log_in(browser, base, "admin@example.org", "/audit")
    page.wait_for_selector("[data-testid=audit-row]")
    summary = page.inner_text("[data-testid=audit-summary]")
    assert summary.startswith("Entries 1 to 50 of ")  # the admin's own sign-in is there too
    first = page.locator("[data-testid=audit-row]").first.inner_text()
    assert "Staff sign-in" in first  # newest first
    assert page.is_disabled("[data-testid=audit-newer]")
    page.click("[data-testid=audit-older]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=audit-summary]').textContent"
        ".startsWith('Entries 51')"
    )
    page.select_option("[data-testid=audit-action]", "suspension")
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=audit-summary]').textContent"
        ".startsWith('Entries 1 to 1 of 1')"
    )
    row = page.inner_text("[data-testid=audit-row]")
    assert "Rater suspended or flagged" in row
    assert "suspended: spam" in row
    # Withdrawals and erasures, and a case's consent, read as sentences.
    for action, expected in (
        ("withdrawal", ["Account erased", "7 answers and 8 leases removed; 3 fused labels made",
                        "Case withdrawn", "“owner asked”: 40 slices, 40 tasks, 12 answers and "
                        "60 files removed from demo; 1 model version flagged"]),
        ("consent_change", ["Case consent changed", "crowd viewing, research sharing → "
                            "research sharing (licence CC0; 0 tasks opened, 5 open tasks "
                            "withheld)"]),
    ):  # fmt: skip
        page.select_option("[data-testid=audit-action]", action)
        page.click("#filters button[type=submit]")
        page.wait_for_function(
            "(a) => [...document.querySelectorAll('[data-testid=audit-row]')].length"
            " && document.querySelector('[data-testid=audit-summary]').textContent"
            ".includes(a)",
            arg="of",
        )
        page.wait_for_function(
            "(t) => document.querySelector('#rows').textContent.includes(t)", arg=expected[0]
        )
        text = page.inner_text("#rows")
        for phrase in expected:
            assert phrase in text, (phrase, text)
    page.select_option("[data-testid=audit-action]", "suspension")
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "(t) => document.querySelector('#rows').textContent.includes(t)", arg="spam"
    )
    shot(page, "audit-laptop.png")
    assert errors == []


def test_a_volunteer_is_turned_away(browser: Any, site: tuple[str, Path]) -> None:
    base, _data = site
    page, errors = log_in(browser, base, "volunteer@example.org", "/audit")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "for admins" in page.inner_text("[data-testid=gate]")
    assert page.is_hidden("#workspace")
    assert errors == []


def test_on_a_phone_the_table_says_it_scrolls_sideways(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data = site
    for width, height, shown in ((360, 640, True), (1440, 900, False)):
        page, errors = log_in(browser, base, "admin@example.org", "/audit", width, height)
        page.wait_for_selector("[data-testid=audit-row]")
        assert page.is_visible("[data-testid=scroll-hint]") is shown
        if shown:  # and it does: the table is wider than its box
            assert page.evaluate(
                "() => { const w = document.querySelector('.table-wrap');"
                " return w.scrollWidth > w.clientWidth; }"
            )
        assert errors == []
        page.context.close()


def test_no_serious_accessibility_violations_at_laptop_and_phone_size(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data = site
    found = axe_at_sizes(
        browser, base, "admin@example.org", "/audit", "[data-testid=audit-row]",
        "audit-phone.png",
    )  # fmt: skip
    assert found == {1440: [], 360: []}
