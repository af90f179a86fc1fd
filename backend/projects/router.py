"""``/api/projects``: list projects with progress; admins create them."""

from fastapi import APIRouter, status

from backend.auth.deps import AdminUser, CurrentUser
from backend.auth.models import EXPERT_ROLES
from backend.core.deps import SessionDep
from backend.core.errors import error_responses
from backend.projects import service
from backend.projects.schemas import ProjectCreate, ProjectPublic, ProjectRead

router = APIRouter(prefix="/projects", tags=["projects"], responses=error_responses(401, 403))


@router.get("", response_model=list[ProjectRead] | list[ProjectPublic])
def list_projects(
    user: CurrentUser, session: SessionDep
) -> list[ProjectRead] | list[ProjectPublic]:
    """Every project with its progress; its settings for experts and admins only."""
    projects = service.list_with_progress(session=session)
    if user.role in EXPERT_ROLES:
        return projects
    return [ProjectPublic.model_validate(p, from_attributes=True) for p in projects]


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
