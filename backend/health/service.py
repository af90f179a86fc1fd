"""Health checks: can we reach the database, and is its schema the one this code needs?"""

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from backend import __version__
from backend.core.db import describe_database
from backend.core.migrations import current_revision, head_revision
from backend.health.schemas import DatabaseHealth, HealthRead


def check_database(engine: Engine) -> DatabaseHealth:
    """Connect, run a trivial query and read the schema revision."""
    where = describe_database(engine)
    head = head_revision()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        # The class name says what failed without echoing connection details.
        return DatabaseHealth(
            dialect=where["dialect"] or "",
            name=where["name"],
            reachable=False,
            head=head,
            error=type(exc).__name__,
        )
    return DatabaseHealth(
        dialect=where["dialect"] or "",
        name=where["name"],
        reachable=True,
        revision=revision,
        head=head,
        schema_current=revision == head,
    )


def check(engine: Engine) -> HealthRead:
    """The whole health report."""
    database = check_database(engine)
    if not database.reachable:
        status = "unavailable"
    elif not database.schema_current:
        status = "degraded"
    else:
        status = "ok"
    return HealthRead(status=status, version=__version__, database=database)
