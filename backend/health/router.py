"""``GET /api/health``: liveness plus the database and schema revision it reached."""

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import Engine

from backend.health import service
from backend.health.schemas import HealthRead

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "The database cannot be reached"}},
)
def health(request: Request, response: Response) -> HealthRead:
    """Report whether the API is up, which database it reached and its schema revision."""
    engine: Engine = request.app.state.engine
    report = service.check(engine)
    if report.status == "unavailable":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
