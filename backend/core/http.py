"""HTTP hygiene for every response: security headers, no caching by default, safe error bodies."""

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import DomainError, ErrorRead, FieldError

# The app's own pages load scripts, styles and images from this origin only; canvases export
# masks as data: and blob: URLs. Nothing may frame the app (clickjacking).
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load their bundles from a CDN and start them inline.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Pure ASGI middleware: CSP, frame-ancestors, nosniff and Referrer-Policy on every answer.

    API answers that set no ``Cache-Control`` of their own get ``no-store``: they are personal
    (leases, accounts, role-gated data) and must not outlive a logout in a browser cache.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else APP_CSP
        is_api = path.startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                if is_api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def json_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A model our own code built, serialized once. Returning it from an endpoint skips
    FastAPI's second validation of the value against ``response_model`` (which still documents
    the answer); worth it on the hot endpoints only."""
    return Response(
        model.model_dump_json(), status_code, headers=headers, media_type="application/json"
    )


def _field(loc: Sequence[Any]) -> str:
    # "body.mask.counts.3" reads better without the part of the request it came in.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "request"


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """422 with one line per field; the submitted values (passwords above all) are left out."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(loc=list(error.get("loc", ())), msg=str(error["msg"]), type=str(error["type"]))
        for error in exc.errors()
    ]
    detail = "; ".join(f"{_field(e.loc)}: {e.msg}" for e in errors[:10])
    if len(errors) > 10:
        detail += f"; and {len(errors) - 10} more"
    body = ErrorRead(detail=detail or "Invalid request", errors=errors[:50])
    return JSONResponse(status_code=422, content=body.model_dump())


async def domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A service's domain error as its HTTP status and an ``ErrorRead`` body."""
    assert isinstance(exc, DomainError)
    return JSONResponse(
        status_code=exc.status_code,
        content=ErrorRead(detail=exc.message).model_dump(),
        headers=exc.headers,
    )


async def http_error_handler(_request: Request, exc: Exception) -> Response:
    """Framework errors (404 route, 405, 413, 400 body) in the same ``ErrorRead`` shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=getattr(exc, "headers", None))
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    return JSONResponse(
        status_code=exc.status_code,
        content=ErrorRead(detail=detail).model_dump(),
        headers=getattr(exc, "headers", None),
    )


def no_store_png(data: bytes) -> Response:
    """A PNG answer no cache keeps (masks and labels are personal or access-controlled)."""
    return Response(content=data, media_type="image/png", headers={"Cache-Control": "no-store"})
