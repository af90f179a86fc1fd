"""Large request bodies are read for signed-in callers only.

Every route but the mask routes accepts small bodies (``backend.core.body``), cheap to parse
whoever sends them. A route that accepts megabytes and lets FastAPI read them (an expert's gold
mask) would parse them before its authentication dependency runs: a made-up token could make
the server parse 4 MB of JSON per request. This middleware checks the caller first whenever a
body may be larger than the small limit; routes check roles and scopes as before.
"""

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.auth.deps import authenticate, read_credentials
from backend.core.deps import Database
from backend.core.errors import DomainError, ErrorRead

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def may_be_large(scope: Scope, small: int) -> bool:
    """Whether the request's body may be over ``small`` bytes: it declares more, or streams
    without declaring its length."""
    headers = Headers(scope=scope)
    declared = headers.get("content-length")
    if declared is None:
        return "transfer-encoding" in headers
    return not declared.isdigit() or int(declared) > small


class SignedInUploads:
    """Pure ASGI middleware: a body that may be over ``small`` bytes, to an API path outside
    ``exempt`` (the sign-in routes, which refuse large bodies anyway), is read only after the
    caller is authenticated; otherwise the error answers at once and the body is never read."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Database,
        small: int,
        prefix: str = "/api/",
        exempt: tuple[str, ...] = ("/api/auth/",),
    ) -> None:
        self.app = app
        self.database = database
        self.small = small
        self.prefix = prefix
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and path.startswith(self.prefix)
            and not path.startswith(self.exempt)
            and may_be_large(scope, self.small)
        ):
            try:
                credentials = read_credentials(Request(scope))
                # No scope yet: the route knows which it needs and checks it.
                await self.database.run(lambda session: authenticate(session, credentials, None))
            except DomainError as exc:
                body = ErrorRead(detail=exc.message, code=exc.code or "error")
                answer = JSONResponse(body.model_dump(), exc.status_code, headers=exc.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
