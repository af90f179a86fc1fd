"""Every table model, imported in one place so Alembic and tests see the whole schema."""

from backend.annotations.models import Annotation
from backend.auth.models import User, UserRole
from backend.imaging.models import Case, ConsentScope, Slice, SliceAxis
from backend.tasks.models import Task, TaskKind, TaskState

__all__ = [
    "Annotation",
    "Case",
    "ConsentScope",
    "Slice",
    "SliceAxis",
    "Task",
    "TaskKind",
    "TaskState",
    "User",
    "UserRole",
]
