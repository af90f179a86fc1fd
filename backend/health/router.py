"""``GET /api/health``: liveness for anyone; database details for admins only."""

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import Engine

from backend.auth.deps import OptionalPrincipal
from backend.auth.models import UserRole
from backend.health import service
from backend.health.schemas import HealthRead

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "The database cannot be reached"}},
)
def health(request: Request, response: Response, principal: OptionalPrincipal) -> HealthRead:
    """Whether the API and its database are up; admins also see the database and revision."""
    engine: Engine = request.app.state.engine
    report = service.check(engine)
    if report.status == "unavailable":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    if principal is None or principal.user.role is not UserRole.admin:
        report.database = None
    return report
