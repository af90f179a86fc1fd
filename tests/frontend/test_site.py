"""One site in a real headless Chromium: the shared header lists the pages each role may use;
a visitor signed out gets the landing page (Create account first, an example picture) and, on
a staff page, a way to sign in and come back; the studio's counters come from the server and
survive a reload; help and the Display panel on a phone; versioned, cached frontend files."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from backend.auth import consent
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from tests.frontend.test_studio import (
    PASSWORD,
    _axe,
    _page,
    _seed_case,
    _submitted,
    _volunteer,
    _wait_slice,
)
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
Page = Any

# The header's pages for each role on a laptop (on a phone the tutorial is left out, and the
# volunteer's one page left is not listed at all).
PAGES = {
    UserRole.volunteer: ["Label", "Tutorial", "Points"],
    UserRole.expert: ["Label", "Tutorial", "Points", "Expert workspace"],
    UserRole.engineer: ["Label", "Tutorial", "Points", "Rounds", "Releases"],
    UserRole.admin: [
        "Label",
        "Tutorial",
        "Points",
        "Expert workspace",
        "Rounds",
        "Releases",
        "Audit log",
    ],
}
# Where each page shows that it has loaded.
LOADED = {"Tutorial": "[data-testid=lessons]:not([hidden])", "Points": "#page:not([hidden])"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Forty 64 x 48 slices to label (one answer each: enough for every test's leases), and an
    account of each role (consent given)."""

    def seed(session: Session, storage: Storage) -> None:
        _seed_case(session, storage, project_gold=False, count=40)
        for role in (UserRole.volunteer, UserRole.expert, UserRole.engineer, UserRole.admin):
            user = auth.create_user(
                session=session,
                email=f"{role.value}@example.org",
                password=PASSWORD,
                role=role,
                display_name=f"The {role.value.title()}",
            )
            user.consent_version = consent.VERSION
            session.add(user)

    with seeded_site(tmp_path_factory.mktemp("site") / "var", seed) as served:
        yield served


def _log_in(page: Page, base: str, login: str) -> None:
    page.fill("#login-email", login)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_selector("#who", state="visible")


def _nav(page: Page) -> list[str]:
    page.wait_for_selector(".site #who, .site .guest")
    return [text.strip() for text in page.locator(".site-nav a").all_inner_texts()]


def test_the_landing_page_offers_create_account_first_with_an_example(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    for size in ((1440, 900), (360, 640)):
        page, errors = _page(browser, *size)
        page.goto(base)
        page.wait_for_selector("#auth:not([hidden])")
        text = page.inner_text("#auth")
        assert "white matter" in text
        assert "FLAIR" in text
        # Create account comes first: in the header, and as the first form, above Log in.
        assert page.locator(".site .guest a").all_inner_texts() == ["Create account", "Log in"]
        signup = page.locator("#signup-form").bounding_box()
        login = page.locator("#login-form").bounding_box()
        assert signup["y"] < login["y"]
        assert page.locator("#auth form").first.get_attribute("id") == "signup-form"
        # The example: a real picture, loaded, described for screen readers.
        image = page.locator("[data-testid=example-image]")
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=example-image]').naturalWidth > 200"
        )
        assert "outlined" in (image.get_attribute("alt") or "")
        assert page.locator(".site-nav").is_hidden()  # no pages to list before signing in
        assert page.evaluate("() => document.documentElement.scrollWidth") <= size[0]
        # The header's Log in goes to the form, ready to type in.
        page.click(".site .guest a:has-text('Log in')")
        page.wait_for_function("() => document.activeElement.id === 'login-email'")
        assert page.locator("#login-email").is_visible()
        assert errors == []


@pytest.mark.parametrize("role", list(PAGES))
def test_the_header_lists_the_pages_of_each_role(
    browser: Any, site: tuple[str, Path], role: UserRole
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, 1440, 900)
    page.goto(base)
    _log_in(page, base, f"{role.value}@example.org")
    assert _nav(page) == PAGES[role]
    assert page.inner_text("[data-testid=display-name]") == f"The {role.value.title()}"
    assert page.get_attribute(".site-nav a[aria-current=page]", "href") == "/"
    for label in PAGES[role][1:]:
        page.click(f".site-nav a:has-text('{label}')")
        page.wait_for_selector(LOADED.get(label, "#workspace:not([hidden])"))
        assert page.is_hidden("[data-testid=gate]")
        assert _nav(page) == PAGES[role]
        assert page.inner_text(".site-nav a[aria-current=page]") == label
        page.click(".site-brand")  # the brand goes home, to labelling
        page.wait_for_selector("#studio:not([hidden]), #empty:not([hidden])")
    # A page the role may not use says so, and the way back.
    if role != UserRole.admin:
        other = "/rounds" if "Rounds" not in PAGES[role] else "/expert"
        page.goto(base + other)
        page.wait_for_selector("[data-testid=gate]", state="visible")
        assert page.locator("[data-testid=gate] a").get_attribute("href") == "/"
    page.click("#logout")
    page.wait_for_selector("#auth:not([hidden])")
    assert page.is_hidden(".site-nav")
    assert errors == []


def test_a_visitor_of_a_staff_page_signs_in_and_comes_back(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, 360, 640)
    page.goto(f"{base}/expert")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "Log in" in page.inner_text("[data-testid=gate]")
    page.click("[data-testid=gate] a")
    page.wait_for_selector("[data-testid=next-note]", state="visible")
    assert page.url == f"{base}/?next=%2Fexpert#login-form"
    assert "Expert workspace" in page.inner_text("[data-testid=next-note]")
    page.wait_for_function("() => document.activeElement.id === 'login-email'")
    _log_in(page, base, "expert@example.org")
    page.wait_for_url(f"{base}/expert")
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.inner_text(".site-nav a[aria-current=page]").startswith("Expert")
    # Only the site's own pages are ever a return path: anything else is ignored.
    page.goto(f"{base}/?next=https://example.org/")
    page.wait_for_selector("#studio:not([hidden]), #empty:not([hidden])")
    assert page.url.startswith(base)
    assert errors == []


def test_the_counters_come_from_the_server_and_survive_a_reload(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, 1440, 900)
    _volunteer(page, base, "Steady Counter")
    page.click("[data-testid=no-lesions]")
    _submitted(page, 1)
    page.click("[data-testid=no-lesions]")
    _submitted(page, 2)
    page.click("[data-testid=skip]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=slice-badge]').textContent.includes('skipped')"
    )
    assert page.inner_text("[data-testid=slice-badge]") == "Slice 3 today · 1 skipped"
    # Then " · 5 pts" once the rewards are read (the first label's badge).
    assert page.inner_text("[data-testid=session-count]").startswith("2 done · 2 today")
    page.reload()
    _wait_slice(page)
    _submitted(page, 2)  # not "0 done": the server's count
    assert page.inner_text("[data-testid=slice-badge]") == "Slice 3 today · 1 skipped"
    # Another device, the same account: the same counts.
    other, other_errors = _page(browser, 360, 640)
    other.goto(base)
    _log_in(other, base, "Steady Counter")
    _wait_slice(other)
    _submitted(other, 2)
    # "today" on laptops only; the points follow once read.
    assert other.inner_text("[data-testid=session-count]").split(" · ")[0] == "2 done"
    assert "today" not in other.inner_text("[data-testid=session-count]")
    assert errors == []
    assert other_errors == []


def test_help_and_display_on_a_touch_phone(browser: Any, site: tuple[str, Path]) -> None:
    base, _data_dir = site
    page, errors = _page(browser, 360, 640, has_touch=True, is_mobile=True)
    _volunteer(page, base, "Thumb Painter")
    page.click("#help-open")
    page.wait_for_selector("#help[open]")
    # Open at the explanation, not scrolled down to the shortcuts and the Close button.
    assert page.evaluate("() => document.querySelector('#help').scrollTop") == 0
    assert page.evaluate("() => document.activeElement.id") == "help-title"
    title = page.locator("#help-title").bounding_box()
    assert 0 <= title["y"] < 640 * 0.25
    page.keyboard.press("Escape")
    page.click(".display summary")
    touch = page.locator("[data-testid=display-note-touch]")
    assert touch.is_visible()
    assert "sliders" in touch.inner_text()
    assert page.locator("[data-testid=display-note-mouse]").is_hidden()
    assert errors == []
    laptop, _laptop_errors = _page(browser, 1440, 900)
    _volunteer(laptop, base, "Mouse Painter")
    laptop.click(".display summary")
    assert laptop.locator("[data-testid=display-note-mouse]").is_visible()
    assert laptop.locator("[data-testid=display-note-touch]").is_hidden()


def test_frontend_files_come_versioned_compressed_and_cached(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, 1440, 900)
    answers: dict[str, dict[str, str]] = {}
    page.on("response", lambda r: answers.setdefault(r.url, r.headers))
    page.goto(base)
    page.wait_for_selector("#auth:not([hidden])")
    page.wait_for_function("() => document.querySelector('.site-brand img').naturalWidth > 0")
    scripts = [url for url in answers if url.endswith(".js")]
    # app.js and every module it imports, all under the same version.
    versions = {re.search(r"/static/([0-9a-f]{12})/", url).group(1) for url in scripts}  # type: ignore[union-attr]
    assert len(versions) == 1
    assert {"app.js", "api.js", "site.js", "tasks.js", "viewer.js"} <= {
        url.rsplit("/", 1)[1] for url in scripts
    }
    for url in scripts:
        assert answers[url]["cache-control"] == "public, max-age=31536000, immutable"
        assert answers[url]["content-encoding"] == "gzip"
    assert answers[f"{base}/"]["cache-control"] == "no-cache"
    icon = page.locator("link[rel=icon]").get_attribute("href") or ""
    assert icon.startswith(f"/static/{versions.pop()}/")
    assert errors == []


def test_the_shared_header_passes_an_accessibility_scan(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    found = {}
    for size in ((1440, 900), (360, 640)):
        page, errors = _page(browser, *size, bypass_csp=True)
        page.goto(f"{base}/rounds")
        page.wait_for_selector("[data-testid=gate]", state="visible")
        found[f"{size} guest"] = _axe(page, ".site")
        page.goto(base)
        _log_in(page, base, "admin@example.org")
        page.goto(f"{base}/rounds")
        page.wait_for_selector("#workspace:not([hidden])")
        found[f"{size} admin"] = _axe(page, ".site")
        assert errors == []
    summary = {where: [v["id"] for v in found[where]] for where in found if found[where]}
    assert summary == {}
