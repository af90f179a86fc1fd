"""Every table model, imported in one place so Alembic and tests see the whole schema."""

from backend.annotations.models import Annotation
from backend.audit.models import AuditAction, AuditEntry
from backend.auth.models import AuthThrottle, Credential, CredentialKind, User, UserRole
from backend.core.outbox import OutboxJob
from backend.fusion.models import FusionResult, FusionRun
from backend.gamification.models import BadgeAward, PointEntry, PointTotal, RewardProfile
from backend.imaging.models import Case, ConsentScope, Contrast, Slice, SliceAxis, Volume
from backend.privacy.models import WithdrawnCase
from backend.projects.models import Project
from backend.quality.models import (
    ConsensusScore,
    GoldScore,
    GoldVersion,
    RaterAction,
    RaterStats,
    RepeatScore,
    SliceRejection,
)
from backend.releases.models import Release, ReleaseFile
from backend.rounds.models import ModelVersion
from backend.tasks.models import (
    Assignment,
    AssignmentState,
    ReportReason,
    Task,
    TaskKind,
    TaskReport,
    TaskState,
)
from backend.tutorials.models import (
    LessonCompletion,
    QualificationAttempt,
    TutorialItem,
    TutorialSlice,
)

__all__ = [
    "AuditAction",
    "AuditEntry",
    "Annotation",
    "BadgeAward",
    "PointEntry",
    "PointTotal",
    "RewardProfile",
    "AuthThrottle",
    "Assignment",
    "AssignmentState",
    "Case",
    "ConsensusScore",
    "ConsentScope",
    "Contrast",
    "Credential",
    "CredentialKind",
    "FusionResult",
    "FusionRun",
    "GoldScore",
    "GoldVersion",
    "LessonCompletion",
    "ModelVersion",
    "OutboxJob",
    "Project",
    "QualificationAttempt",
    "RaterAction",
    "RaterStats",
    "RepeatScore",
    "Release",
    "ReleaseFile",
    "ReportReason",
    "Slice",
    "SliceAxis",
    "SliceRejection",
    "Task",
    "TaskReport",
    "TaskKind",
    "TaskState",
    "TutorialItem",
    "TutorialSlice",
    "User",
    "UserRole",
    "Volume",
    "WithdrawnCase",
]
