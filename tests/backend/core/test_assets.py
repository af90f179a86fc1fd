"""The frontend as served: precompressed gzip when accepted, a versioned prefix cached for a
year (ES-module imports resolve inside it), pages revalidated by ETag, old URLs still working,
and the favicon."""

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.assets import Frontend, accepts_gzip
from backend.core.http import http_error_handler
from backend.main import FRONTEND_DIR, PAGES, add_frontend

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def served() -> tuple[TestClient, Frontend]:
    """The real frontend/ folder behind the app's own routes and 404s (no database needed)."""
    app = FastAPI()
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    frontend = Frontend(FRONTEND_DIR)
    add_frontend(app, frontend)
    return TestClient(app), frontend


def test_pages_point_at_the_versioned_prefix_and_are_revalidated(
    served: tuple[TestClient, Frontend],
) -> None:
    client, frontend = served
    assert re.fullmatch(r"[0-9a-f]{12}", frontend.version)
    for path in PAGES:
        page = client.get(path, headers=GZIP)
        assert page.status_code == 200, path
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-encoding"] == "gzip"
        assert page.headers["vary"] == "Accept-Encoding"
        html = page.text  # httpx decodes the gzip
        assert '"/static/' not in html.replace(f'"/static/{frontend.version}/', "")
        assert f'src="/static/{frontend.version}/' in html, path
        assert f'rel="icon" href="/static/{frontend.version}/favicon.svg"' in html, path
        again = client.get(path, headers={**GZIP, "If-None-Match": page.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["cache-control"] == "no-cache"


def test_versioned_files_are_immutable_and_compressed_once(
    served: tuple[TestClient, Frontend],
) -> None:
    client, frontend = served
    url = f"/static/{frontend.version}/viewer.js"
    packed = client.get(url, headers=GZIP)
    assert packed.status_code == 200
    assert packed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"] == "text/javascript; charset=utf-8"
    assert int(packed.headers["content-length"]) < len(packed.content) / 2
    assert packed.content == (FRONTEND_DIR / "viewer.js").read_bytes()
    plain = client.get(url, headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain.content == (FRONTEND_DIR / "viewer.js").read_bytes()
    assert plain.headers["etag"] != packed.headers["etag"]  # one ETag per representation
    assert (
        client.get(url, headers={**GZIP, "If-None-Match": packed.headers["etag"]}).status_code
        == 304
    )
    # A PNG is compressed already: sent as it is, whatever the browser accepts.
    image = client.get(f"/static/{frontend.version}/example-lesions.png", headers=GZIP)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert "content-encoding" not in image.headers
    assert image.content.startswith(b"\x89PNG")


def test_old_urls_keep_working_without_being_cached_for_long(
    served: tuple[TestClient, Frontend],
) -> None:
    client, _frontend = served
    for url in ("/static/app.js", "/static/000000000000/app.js"):
        old = client.get(url, headers=GZIP)
        assert old.status_code == 200, url
        assert old.headers["cache-control"] == "no-cache"
        assert old.content == (FRONTEND_DIR / "app.js").read_bytes()
    missing = client.get("/static/nothing-here.js")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert client.get("/static/../backend/main.py").status_code == 404


def test_the_favicon_is_where_browsers_look(served: tuple[TestClient, Frontend]) -> None:
    client, frontend = served
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.headers["cache-control"] == "public, max-age=86400"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    svg = client.get(f"/static/{frontend.version}/favicon.svg", headers=GZIP)
    assert svg.headers["content-type"] == "image/svg+xml"
    assert client.head("/favicon.ico").status_code == 200


def test_the_version_follows_every_file_and_dot_files_are_never_served(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text('import { x } from "./api.js";\n')
    (tmp_path / "api.js").write_text("export const x = 1;\n")
    (tmp_path / "index.html").write_text('<script type="module" src="/static/app.js"></script>')
    (tmp_path / ".secret.swp").write_text("never")
    before = Frontend(tmp_path)
    assert ".secret.swp" not in before.assets
    assert before.assets["index.html"].body == (
        f'<script type="module" src="/static/{before.version}/app.js"></script>'.encode()
    )
    (tmp_path / "api.js").write_text("export const x = 2;\n")
    assert Frontend(tmp_path).version != before.version
    # Tiny files are kept as they are: gzip would make them larger.
    assert before.assets["api.js"].gzipped is None


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("*", True),
    ],
)
def test_accept_encoding(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
