"""The ``mscrowd`` command line."""

from typing import Annotated

import typer
import uvicorn

from backend.core.config import get_settings
from backend.core.db import create_db_engine
from backend.core.errors import SchemaNotCurrent
from backend.core.migrations import current_revision, ensure_current, upgrade

app = typer.Typer(help="mscrowd: crowd labelling of MS lesions on MRI.", no_args_is_help=True)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    try:
        upgrade(engine, revision)
        where = engine.url.render_as_string(hide_password=True)
        typer.echo(f"Database {where} is at revision {current_revision(engine)}.")
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the web app and API; the database must be migrated first."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    try:
        ensure_current(engine)
    except SchemaNotCurrent as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
    )
