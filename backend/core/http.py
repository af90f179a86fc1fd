"""HTTP hygiene for every response: security headers, no caching by default, safe error bodies."""

from collections.abc import Sequence
from http import HTTPStatus
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
# Machine-readable codes of the framework's own errors.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}
# Field errors listed in a 422 (the count of the rest is given), and the longest name of a
# field shown in one (an unknown key may be kilobytes long).
MAX_FIELD_ERRORS = 50
MAX_FIELD_NAME = 64
INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again later"


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


def error_body(status: int, detail: str | None = None, code: str | None = None) -> bytes:
    """The ``ErrorRead`` JSON of a framework error: the status's phrase unless ``detail``."""
    if detail is None:
        detail = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    code = code or HTTP_CODES.get(status, f"http_{status}")
    return ErrorRead(detail=detail, code=code).model_dump_json().encode()


class JsonErrors:
    """Pure ASGI middleware: every error answer is ``ErrorRead`` JSON, whoever produced it.

    Sits inside ``SecurityHeaders``, so its answers carry the headers too. An exception that
    escapes the app becomes a JSON 500 that says nothing about it (Starlette's own 500 is
    plain text and outside every user middleware) and is raised on to be logged. A plain-text
    error from the framework (Starlette's 413 when a declared Content-Length is over the
    limit, say) is replaced by its JSON equivalent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: Message | None = None  # the start of a non-JSON error answer, being replaced

        async def send_json_errors(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                content_type = MutableHeaders(scope=message).get("content-type", "")
                if status >= 400 and not content_type.startswith("application/json"):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                if message.get("more_body", False):
                    return  # the framework's text is dropped, whatever its length
                await _send_error(send, int(held["status"]), headers=held)
                held = None
                return
            await send(message)

        try:
            await self.app(scope, receive, send_json_errors)
        except Exception:
            if started:
                raise
            await _send_error(send, 500, INTERNAL_ERROR)
            raise  # logged by the server (Starlette's handler sees the answer already sent)


async def _send_error(
    send: Send, status: int, detail: str | None = None, *, headers: Message | None = None
) -> None:
    body = error_body(status, detail)
    kept = [] if headers is None else MutableHeaders(scope=headers).raw
    # The replaced answer's own headers (Retry-After, Allow) stay; its body's do not.
    raw = [(k, v) for k, v in kept if k not in (b"content-type", b"content-length")]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


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


def _short(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part)[:MAX_FIELD_NAME] for part in loc]


def validation_error_read(raw: Sequence[Any], total: int | None = None) -> ErrorRead:
    """The 422 body of validation errors: the first ``MAX_FIELD_ERRORS`` of them (``total``
    counted, when more were left unbuilt), never the values sent."""
    total = len(raw) if total is None else total
    errors = [
        FieldError(loc=_short(error.get("loc", ())), msg=str(error["msg"]), type=str(error["type"]))
        for error in raw[:MAX_FIELD_ERRORS]
    ]
    detail = "; ".join(f"{_field(e.loc)}: {e.msg}" for e in errors[:10])
    if total > 10:
        detail += f"; and {total - 10} more" if errors else f"{total} invalid values"
    return ErrorRead(detail=detail or "Invalid request", code="invalid_input", errors=errors)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """422 with one line per field; the submitted values (passwords above all) are left out."""
    assert isinstance(exc, RequestValidationError)
    # Bodies read by hand (``backend.core.body``) count the errors they did not build.
    total: int | None = getattr(exc, "total", None)
    body = validation_error_read(exc.errors(), total)
    return JSONResponse(status_code=422, content=body.model_dump())


async def domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A service's domain error as its HTTP status and an ``ErrorRead`` body."""
    assert isinstance(exc, DomainError)
    return JSONResponse(
        status_code=exc.status_code,
        content=ErrorRead(detail=exc.message, code=exc.code or "error", href=exc.href).model_dump(),
        headers=exc.headers,
    )


async def http_error_handler(_request: Request, exc: Exception) -> Response:
    """Framework errors (404 route, 405, 413, 400 body) in the same ``ErrorRead`` shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=getattr(exc, "headers", None))
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        status_code=exc.status_code,
        content=ErrorRead(detail=detail, code=code).model_dump(),
        headers=getattr(exc, "headers", None),
    )


def no_store_png(data: bytes) -> Response:
    """A PNG answer no cache keeps (masks and labels are personal or access-controlled)."""
    return Response(content=data, media_type="image/png", headers={"Cache-Control": "no-store"})
