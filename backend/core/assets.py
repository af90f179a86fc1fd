"""The browser frontend, read once at startup and served from memory: gzip-compressed ahead of
time, under a versioned prefix that caches may keep for a year.

Every file of ``frontend/`` is read when the app is built. The version is a hash of all of
them together, so ``/static/<version>/app.js`` names one exact frontend: an ES module's
relative imports (``./api.js``) resolve inside the same version, and no page can mix an old
module with a new one. The HTML pages are rewritten at startup to point at the versioned
prefix and are themselves served ``no-cache`` (revalidated by ETag), so a deploy reaches every
browser on its next page load. Old unversioned URLs (``/static/app.js``) keep working, as
``no-cache`` answers of the current file.

Compression happens here, once per file, not in a middleware: the API's hot answers (about
250 submissions a second under load) are small JSON that gzip would only slow down.
"""

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

STATIC_PREFIX = "/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The favicon's URL cannot carry a version: browsers ask for /favicon.ico by that name.
FAVICON_CACHE = "public, max-age=86400"
VERSION_LENGTH = 12
VERSION_PATTERN = re.compile(rf"[0-9a-f]{{{VERSION_LENGTH}}}")
# Types worth compressing; PNG and other images are compressed already.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# A gzip copy is kept only when it saves at least this much (tiny files grow when compressed).
MIN_SAVING = 0.9
# Absolute references to the frontend in a page: src="/static/..." href='/static/...'.
STATIC_REFERENCE = re.compile(rb"""(?<=["'(])/static/""")


@dataclass(frozen=True)
class Asset:
    """One frontend file as served: its bytes, a gzip copy when worth it, type and ETags."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str  # of ``body``; the gzip copy's is the same with a "-gz" suffix inside the quotes

    @property
    def etag_gzip(self) -> str:
        return self.etag[:-1] + '-gz"'

    @classmethod
    def of(cls, name: str, body: bytes) -> "Asset":
        suffix = Path(name).suffix.lower()
        media_type = MEDIA_TYPES.get(suffix) or (
            mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        gzipped = None
        if media_type.startswith(COMPRESSIBLE):
            # mtime=0: the same file always compresses to the same bytes.
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            if len(packed) <= len(body) * MIN_SAVING:
                gzipped = packed
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body=body, gzipped=gzipped, media_type=media_type, etag=etag)


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header admits gzip (``gzip;q=0`` refuses it)."""
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower().removeprefix("q=")
        if not params.strip() or not quality.replace(".", "", 1).isdigit():
            return True
        return float(quality) > 0
    return False


def _matches(header: str, *etags: str) -> bool:
    """Whether ``If-None-Match`` names one of ``etags`` (weak comparison, as RFC 9110 says)."""
    if header.strip() == "*":
        return True
    sent = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return any(tag in sent for tag in etags)


def _hidden(path: Path) -> bool:
    """Dot files and folders (editor swap files, .DS_Store) are never served."""
    return any(part.startswith(".") for part in path.parts)


class Frontend:
    """The files under ``directory``, versioned and compressed, ready to answer requests."""

    def __init__(self, directory: Path) -> None:
        files = {
            path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and not _hidden(path.relative_to(directory))
        }
        digest = hashlib.sha256()
        for name, body in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
        self.version = digest.hexdigest()[:VERSION_LENGTH]
        self.prefix = f"{STATIC_PREFIX}{self.version}/"
        self.assets = {
            name: Asset.of(name, self.rewrite(body) if name.endswith(".html") else body)
            for name, body in files.items()
        }

    def rewrite(self, page: bytes) -> bytes:
        """``page`` with its ``/static/`` references moved under this version's prefix."""
        return STATIC_REFERENCE.sub(self.prefix.encode(), page)

    def locate(self, path: str) -> tuple[str, bool]:
        """The file a ``/static/{path}`` request names, and whether it is of this version."""
        first, _, rest = path.partition("/")
        if first == self.version and rest:
            return rest, True
        if rest and VERSION_PATTERN.fullmatch(first):
            # A page of an earlier deploy asking for its files: today's, never cached for long.
            return rest, False
        return path, False

    def respond(self, request: Request, name: str, cache_control: str) -> Response:
        """``name`` as an answer to ``request``: gzip when accepted, 304 when the ETag matches."""
        asset = self.assets.get(name)
        if asset is None:
            raise StarletteHTTPException(404, "No such file")
        headers = {"Cache-Control": cache_control}
        use_gzip = asset.gzipped is not None and accepts_gzip(
            request.headers.get("accept-encoding", "")
        )
        if asset.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
        headers["ETag"] = asset.etag_gzip if use_gzip else asset.etag
        if _matches(request.headers.get("if-none-match", ""), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        body = asset.gzipped if use_gzip and asset.gzipped is not None else asset.body
        return Response(body, media_type=asset.media_type, headers=headers)
