"""Application factory: settings, database engine, routers and error handlers."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from backend import __version__
from backend.annotations.masks import MAX_PNG_BASE64
from backend.auth.router import router as auth_router
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine
from backend.core.errors import DomainError
from backend.core.migrations import ensure_current
from backend.core.storage import Storage
from backend.health.router import router as health_router
from backend.imaging.router import router as imaging_router
from backend.projects.router import router as projects_router
from backend.tasks.router import router as tasks_router

FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend"
# Largest request body accepted at all (a PNG mask in base64 plus a little JSON).
MAX_BODY_BYTES = MAX_PNG_BASE64 + 64 * 1024


async def _domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})


async def _limit_body(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    # Refuse oversized uploads from their declared length, before reading them.
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return JSONResponse(
            status_code=413,
            content={"detail": f"Request body larger than {MAX_BODY_BYTES} bytes"},
        )
    return await call_next(request)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the mscrowd API; refuses to start on a database that is not migrated."""
    settings = settings or get_settings()
    owns_engine = engine is None
    db_engine = engine if engine is not None else create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ensure_current(db_engine)
        yield
        if owns_engine:
            db_engine.dispose()

    app = FastAPI(
        title="mscrowd",
        version=__version__,
        summary="Crowd labelling of multiple sclerosis lesions on MRI.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = db_engine
    app.state.storage = Storage(settings.storage_url)
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.middleware("http")(_limit_body)
    for router in (health_router, auth_router, projects_router, tasks_router, imaging_router):
        app.include_router(router, prefix="/api")
    app.mount("/static", StaticFiles(directory=FRONTEND_DIR), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        """The labelling page."""
        return FileResponse(FRONTEND_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app
