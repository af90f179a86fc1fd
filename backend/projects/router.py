"""``/api/projects``: list projects with progress; admins create them."""

from fastapi import APIRouter, status

from backend.auth.deps import AdminUser, CurrentUser
from backend.core.deps import SessionDep
from backend.core.errors import error_responses
from backend.projects import service
from backend.projects.schemas import ProjectCreate, ProjectRead

router = APIRouter(prefix="/projects", tags=["projects"], responses=error_responses(401, 403))


@router.get("", response_model=list[ProjectRead])
def list_projects(_user: CurrentUser, session: SessionDep) -> list[ProjectRead]:
    """Every project with its progress."""
    return service.list_with_progress(session=session)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses=error_responses(400, 409, e409="A project with this name exists"),
)
def create_project(body: ProjectCreate, _admin: AdminUser, session: SessionDep) -> ProjectRead:
    """Create a project (admins)."""
    project = service.create(session=session, project_in=body)
    assert project.id is not None
    return ProjectRead(**project.model_dump(), cases=0, tasks_open=0, tasks_complete=0)
