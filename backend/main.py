"""Application factory: settings, database engine, routers, error handlers and HTTP hygiene."""

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from backend import __version__
from backend.annotations.masks import MAX_MASK_BODY_BYTES
from backend.annotations.schemas import AnnotationCreate
from backend.audit import service as audit
from backend.audit.router import router as audit_router
from backend.auth.guard import SignedInUploads
from backend.auth.router import router as auth_router
from backend.core.admission import Admission
from backend.core.assets import FAVICON_CACHE, IMMUTABLE, REVALIDATE, Frontend
from backend.core.body import SMALL_BODY_BYTES, document_bodies
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine, pooled_connections
from backend.core.deps import Database
from backend.core.errors import DomainError, error_responses
from backend.core.http import (
    JsonErrors,
    SecurityHeaders,
    domain_error_handler,
    http_error_handler,
    validation_error_handler,
)
from backend.core.migrations import ensure_current
from backend.core.outbox import Relay, celery_sender
from backend.core.security import HashingGate
from backend.core.storage import Storage
from backend.fusion.router import router as fusion_router
from backend.gamification import badges, limits
from backend.gamification.router import router as rewards_router
from backend.health.router import router as health_router
from backend.imaging.router import router as imaging_router
from backend.privacy.router import account_router
from backend.privacy.router import router as privacy_router
from backend.projects.router import router as projects_router
from backend.quality.router import router as quality_router
from backend.quality.workspace import router as workspace_router
from backend.releases.router import router as releases_router
from backend.rounds.router import router as rounds_router
from backend.tasks.router import reports_router
from backend.tasks.router import router as tasks_router
from backend.tutorials.content import default_catalog
from backend.tutorials.lessons_router import router as lessons_router
from backend.tutorials.router import router as tutorials_router

FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend"
# Largest request body accepted at all, by the routes that take a mask; every other route
# accepts SMALL_BODY_BYTES (auth routes less). Counted as the body streams in, so a chunked
# upload without Content-Length is cut off at the limit too.
MAX_BODY_BYTES = MAX_MASK_BODY_BYTES


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the mscrowd API; refuses to start on a database that is not migrated."""
    settings = settings or get_settings()
    # The lessons validate before anything else: a broken one fails with its file and line.
    default_catalog()
    badges.catalog()  # the badges too (backend/gamification/badges.yaml)
    owns_engine = engine is None
    db_engine = engine or create_db_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    # One admitted request per pooled connection (see backend.core.admission), and a thread for
    # each of them. Overflow connections stay a margin: admitting one request per overflow
    # connection too had them opened and closed hundreds of times a minute (PostgreSQL then
    # spent 0.5 of a core forking backends), for no gain on a GIL-bound process.
    admitted = settings.max_concurrent_requests or pooled_connections(db_engine) or 40

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ensure_current(db_engine)
        # Everything built so far (modules, SQLAlchemy and pydantic caches, the app) lives as
        # long as the process: freeze it out of the garbage collector's view, so its full
        # collections scan only what requests create (they paused the server for up to a
        # few hundred milliseconds under load, issue 18).
        gc.collect()
        gc.freeze()
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, admitted)
        yield
        if owns_engine:
            db_engine.dispose()

    app = FastAPI(
        title="mscrowd",
        version=__version__,
        summary="Crowd labelling of multiple sclerosis lesions on MRI.",
        lifespan=lifespan,
        # Any operation may be refused for its size or for invalid parameters.
        responses=error_responses(413, 422, 503),
    )
    app.state.settings = settings
    app.state.engine = db_engine
    app.state.relay = Relay(db_engine, celery_sender(settings))
    app.state.database = Database(db_engine, app.state.relay)
    app.state.storage = Storage(settings.storage_url)
    app.state.submits = limits.for_settings(settings)  # answers per volunteer and minute
    app.state.hashing = HashingGate(
        slots=settings.password_hash_concurrency,
        queue=settings.password_hash_queue,
        timeout=settings.password_hash_wait_seconds,
    )
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    # Innermost first. The default body limit; routes raise or lower it with their own
    # max_body_size, which Starlette applies to this same counter. Here rather than
    # FastAPI(max_body_size=...), whose 413 is plain text sent outside every user middleware.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=SMALL_BODY_BYTES)
    # A body that may be large is read only once the caller is known: inside admission (it
    # uses a connection), outside the limit (whose counter would turn its 401 into a 413).
    app.add_middleware(SignedInUploads, database=app.state.database, small=SMALL_BODY_BYTES)
    app.add_middleware(
        Admission,
        limit=admitted,
        queue=settings.request_queue,
        wait=settings.request_wait_seconds,
        server_timing=settings.server_timing,
    )
    app.add_middleware(JsonErrors)
    # Added last, so outermost: the headers are on every answer, 503s and 500s included.
    app.add_middleware(SecurityHeaders, hsts=bool(settings.cookie_secure))
    routers = (health_router, auth_router, projects_router, tasks_router, imaging_router)
    for router in (*routers, reports_router, fusion_router, rounds_router):
        app.include_router(router, prefix="/api")
    # Experts paint gold masks (POST /api/quality/slices/{id}/gold) at the mask routes' size.
    app.include_router(quality_router, prefix="/api", max_body_size=MAX_BODY_BYTES)
    app.include_router(workspace_router, prefix="/api")  # the expert workspace
    app.include_router(tutorials_router, prefix="/api")  # practice and qualification items
    app.include_router(lessons_router, prefix="/api")  # lessons and the field guide
    app.include_router(rewards_router, prefix="/api")  # points, badges, leaderboards, goals
    app.include_router(audit_router, prefix="/api")  # the audit log, for admins
    app.include_router(privacy_router, prefix="/api")  # consent, withdrawal, erasure
    app.include_router(account_router, prefix="/api")  # erasing one's own account
    app.include_router(releases_router, prefix="/api")  # label releases for ML engineers
    audit.install()  # rater actions leave their audit entry from any session
    # POST /api/tasks/{id}/annotations reads its body itself, after authenticating.
    document_bodies(app, AnnotationCreate)
    add_frontend(app, Frontend(FRONTEND_DIR))
    return app


# The pages, each an HTML file of frontend/ (its /static/ references rewritten to the version).
PAGES = {
    "/": ("index.html", "The labelling page, and the landing page for visitors signed out."),
    "/tutorials": ("tutorials.html", "Lessons, practice, the field guide and the test."),
    "/expert": ("expert.html", "The expert workspace (its API calls check the role)."),
    "/rounds": ("rounds.html", "Active-learning rounds and the learning curve (the API checks)."),
    "/rewards": ("rewards.html", "Your points, level, streak, badges and the leaderboards."),
    "/audit": ("audit.html", "The audit log, for admins (the API checks the role)."),
    "/releases": ("releases.html", "Label releases for ML engineers (the API checks the role)."),
}


def add_frontend(app: FastAPI, frontend: Frontend) -> None:
    """Serve ``frontend``: the pages, ``/static/`` (versioned or not) and ``/favicon.ico``."""
    app.state.frontend = frontend

    def page(file: str, summary: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return frontend.respond(request, file, REVALIDATE)

        endpoint.__doc__ = summary
        return endpoint

    for path, (file, summary) in PAGES.items():
        app.add_api_route(
            path, page(file, summary), methods=["GET", "HEAD"], include_in_schema=False
        )

    @app.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(path: str, request: Request) -> Response:
        """A frontend file: for a year under this version's prefix, else revalidated."""
        name, current = frontend.locate(path)
        return frontend.respond(request, name, IMMUTABLE if current else REVALIDATE)

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    async def favicon(request: Request) -> Response:
        """The site's icon, where browsers look for it without being told."""
        return frontend.respond(request, "favicon.ico", FAVICON_CACHE)
