"""Request bodies: size limits, and JSON read by hand for endpoints that check the caller first.

FastAPI reads and parses a body on the event loop before any dependency runs, so a made-up
bearer token with 3 MB of JSON had the whole server parse and validate it (25 s for a million
bad run lengths) before being told it was not signed in. Endpoints that take large bodies
therefore take the raw ``Request``: they authenticate, then ``read_body`` (bounded as it
streams), then ``parse_json`` in a worker thread. Every other route gets a small limit
(``SMALL_BODY_BYTES``, ``AUTH_BODY_BYTES``), so what FastAPI parses for them stays small.
"""

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from backend.core.http import MAX_FIELD_ERRORS

# Every route's body limit unless it sets its own: the largest small JSON body (a report note,
# a round's settings) fits many times over.
SMALL_BODY_BYTES = 16 * 1024
# Sign-up, log-in, consent and tokens: a few short strings.
AUTH_BODY_BYTES = 4 * 1024
# Beyond this many errors none are built (each costs microseconds, a million of them seconds).
MAX_BUILT_ERRORS = 1000
REF_TEMPLATE = "#/components/schemas/{model}"

M = TypeVar("M", bound=BaseModel)


class InvalidBody(RequestValidationError):
    """A hand-read body that failed validation; ``total`` counts every error, built or not."""

    def __init__(self, errors: list[Any], total: int) -> None:
        super().__init__(errors)
        self.total = total


def too_large(limit: int) -> StarletteHTTPException:
    """The 413 of a body over ``limit`` bytes (answered as ``body_too_large``)."""
    return StarletteHTTPException(413, f"The request body is larger than {limit} bytes")


async def read_body(request: Request, *, limit: int) -> bytes:
    """The body of ``request``, refused with 413 when it declares or streams more than
    ``limit`` bytes (what was read is dropped at once), and with 415 when it is not JSON."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise StarletteHTTPException(415, "Send the body as JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise StarletteHTTPException(400, "The request body was cut off") from None
    return b"".join(chunks)


def parse_json(model: type[M], raw: bytes) -> M:
    """``raw`` parsed and validated as ``model``, for a worker thread; ``InvalidBody`` (422)
    with at most ``MAX_FIELD_ERRORS`` errors built."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        total = exc.error_count()
        built = (
            exc.errors(include_url=False, include_context=False, include_input=False)
            if total <= MAX_BUILT_ERRORS
            else []
        )
        errors = [{**e, "loc": ("body", *e["loc"])} for e in built[:MAX_FIELD_ERRORS]]
        raise InvalidBody(errors, total) from None


def json_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON body of an endpoint that reads its
    body itself (``document_bodies`` adds the model to the schema's components)."""
    schema = {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {"requestBody": {**body, "description": description} if description else body}


def document_bodies(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put ``models``, and the models they use, in ``app``'s OpenAPI components (for the
    endpoints documented with ``json_body``); the names FastAPI gave already stay."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defs = models_json_schema(
                [(model, "validation") for model in models], ref_template=REF_TEMPLATE
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in defs.get("$defs", {}).items():
                components.setdefault(name, definition)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
