"""Application factory: settings, database engine, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import Engine

from backend import __version__
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine
from backend.core.errors import DomainError
from backend.core.migrations import ensure_current
from backend.health.router import router as health_router


async def _domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})


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
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.include_router(health_router, prefix="/api")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> RedirectResponse:
        # The labelling UI arrives with the frontend; until then the API docs are the front page.
        return RedirectResponse("/docs")

    return app
