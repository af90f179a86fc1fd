"""The releases page in Chromium, as an ML engineer: a built release with its counts, its
download links and a preview per case with images; a volunteer turned away; axe-core at laptop
and phone size."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from backend.auth import consent
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.db import transaction
from backend.core.storage import Storage
from backend.releases import service
from backend.releases.plan import Filters
from tests.backend.releases.cases import labelled_project
from tests.factories import PASSWORD
from tests.frontend.pages import axe_at_sizes, log_in, shot
from tests.live import seeded_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    def seed(session: Session, storage: Storage) -> None:
        engine = session.get_bind()
        crowd = labelled_project(engine, storage, per_volunteer=36)  # type: ignore[arg-type]
        with transaction(engine) as writing:  # type: ignore[arg-type]
            for role in (UserRole.engineer, UserRole.volunteer):
                user = auth.create_user(
                    session=writing, email=f"{role.value}@example.org", password=PASSWORD,
                    role=role,
                )  # fmt: skip
                user.consent_version = consent.VERSION
                writing.add(user)
            made = service.create(
                writing, project_name=crowd.project, name="rel-r1", filters=Filters(), actor=None
            )
            release_id = made.id or 0
        assert service.run(engine, storage, release_id) is not None  # type: ignore[arg-type]

    with seeded_site(tmp_path_factory.mktemp("releases") / "var", seed) as served:
        yield served


def test_an_engineer_sees_the_release(browser: Any, site: tuple[str, Path]) -> None:
    base, _data = site
    page, errors = log_in(browser, base, "engineer@example.org", "/releases")
    page.wait_for_selector("[data-testid=release]")
    text = page.inner_text("[data-testid=release]")
    assert "rel-r1" in text
    assert "ready" in text
    assert "3 (2 with images, 1 held out)" in text
    # Two previews (the cases with images); each loads.
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[data-testid=preview]')]"
        ".filter((i) => i.complete && i.naturalWidth > 0).length === 2"
    )
    href = page.get_attribute("[data-testid=download]", "href")
    assert href == "/api/releases/rel-r1/archive.tar"
    got = page.request.get(f"{base}{href}", headers={"Range": "bytes=0-511"})
    assert got.status == 206
    assert page.locator("nav a[href='/releases']").count() == 1
    # The README opens in the browser (inline text); NIfTI files download.
    readme = page.request.get(f"{base}/api/releases/rel-r1/files/README.md")
    assert readme.headers["content-disposition"].startswith("inline")
    assert readme.headers["content-type"].startswith("text/plain")
    assert "## Training with nnU-Net v2" in readme.text()
    # Files one by one: a link per file, with its checksum.
    page.click("[data-testid=release] .file-list summary")
    page.wait_for_selector("[data-testid=files] li a")
    links = page.eval_on_selector_all("[data-testid=files] li a", "(a) => a.map((x) => x.href)")
    assert f"{base}/api/releases/rel-r1/files/dataset.json" in links
    nifti = next(link for link in links if link.endswith(".nii.gz"))
    assert page.request.get(nifti).headers["content-disposition"].startswith("attachment")
    # A download token for scripts: made on the page, it reads releases and nothing else.
    page.click("#scripted summary")
    assert "/api/releases/rel-r1/archive.tar" in page.inner_text("[data-testid=curl]")
    page.click("[data-testid=make-token]")
    token = page.inner_text("[data-testid=token-value]")
    fresh = page.context.browser.new_context()  # no session cookie: the token alone
    bearer = {"Authorization": f"Bearer {token}", "Range": "bytes=0-99"}
    assert fresh.request.get(f"{base}{href}", headers=bearer).status == 206
    assert fresh.request.get(f"{base}/api/projects", headers=bearer).status == 403
    fresh.close()
    shot(page, "releases-laptop.png", full_page=True)
    assert errors == []


def test_a_volunteer_is_turned_away(browser: Any, site: tuple[str, Path]) -> None:
    base, _data = site
    page, errors = log_in(browser, base, "volunteer@example.org", "/releases")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "for ML engineers" in page.inner_text("[data-testid=gate]")
    assert page.request.get(f"{base}/api/releases").status == 403
    assert errors == []


def test_no_serious_accessibility_violations_at_laptop_and_phone_size(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data = site
    found = axe_at_sizes(
        browser, base, "engineer@example.org", "/releases", "[data-testid=release]",
        "releases-phone.png",
    )  # fmt: skip
    assert found == {1440: [], 360: []}
