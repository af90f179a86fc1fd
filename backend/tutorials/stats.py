"""How the tutorials work for the crowd, for experts and admins: lesson completion, each
exercise's error pattern (which mimic fools people most), and qualification pass rates."""

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.core.db import table_of
from backend.projects.models import Project
from backend.tutorials.content import Catalog
from backend.tutorials.models import (
    ItemPurpose,
    LessonCompletion,
    MaterialKind,
    QualificationAttempt,
    TutorialItem,
    TutorialSlice,
)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def lesson_rows(session: Session, catalog: Catalog) -> list[dict[str, Any]]:
    """Per lesson: volunteers who completed its current version and any version."""
    rows = session.exec(
        select(
            LessonCompletion.lesson_id,
            LessonCompletion.version,
            func.count(func.distinct(LessonCompletion.user_id)),
        ).group_by(col(LessonCompletion.lesson_id), col(LessonCompletion.version))
    ).all()
    by_lesson: dict[str, dict[int, int]] = defaultdict(dict)
    for lesson_id, version, users in rows:
        by_lesson[lesson_id][version] = users
    return [
        {
            "id": lesson.id,
            "title": lesson.title,
            "version": lesson.version,
            "completed_current": by_lesson[lesson.id].get(lesson.version, 0),
            "completed_any": sum(by_lesson[lesson.id].values()),
        }
        for lesson in catalog.lessons("en")
    ]


def _answered(session: Session) -> list[Any]:
    items, material = table_of(TutorialItem), table_of(TutorialSlice)
    columns = ["purpose", "lesson_id", "exercise_id", "dice", "lesions_reference"]
    columns += ["lesions_found", "false_alarms"]
    query = (
        sa_select(*(items.c[name] for name in columns), material.c.kind, material.c.mimic)
        .join(material, material.c.slice_id == items.c.slice_id)
        .where(items.c.answered_at.is_not(None))
    )
    return list(session.execute(query).all())


def exercise_rows(answered: list[Any]) -> list[dict[str, Any]]:
    """Per practice exercise: answers, mean Dice on lesion slices, lesions missed, and the
    share of answers with a false lesion."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in answered:
        if row.purpose == ItemPurpose.practice:
            groups[(row.lesson_id, row.exercise_id)].append(row)
    out = []
    for (lesson_id, exercise_id), rows in sorted(groups.items()):
        lesion = [r for r in rows if r.kind == MaterialKind.lesion]
        reference = sum(r.lesions_reference or 0 for r in lesion)
        out.append(
            {
                "lesson": lesson_id,
                "exercise": exercise_id,
                "kind": str(rows[0].kind),
                "mimic": rows[0].mimic,
                "answers": len(rows),
                "mean_dice": round(sum(r.dice or 0 for r in lesion) / len(lesion), 4)
                if lesion
                else None,
                "missed_share": _share(
                    reference - sum(r.lesions_found or 0 for r in lesion), reference
                ),
                "false_alarm_share": _share(
                    sum((r.false_alarms or 0) > 0 for r in rows), len(rows)
                ),
            }
        )
    return out


def mimic_rows(answered: list[Any]) -> list[dict[str, Any]]:
    """Per mimic kind, over practice and qualification answers: how often it was painted as
    a lesion (the fooled share), most fooling first."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in answered:
        if row.kind == MaterialKind.mimic:
            groups[row.mimic or "unknown"].append(row)
    out = [
        {
            "mimic": mimic,
            "answers": len(rows),
            "fooled_share": _share(sum((r.false_alarms or 0) > 0 for r in rows), len(rows)),
        }
        for mimic, rows in groups.items()
    ]
    return sorted(out, key=lambda r: -(r["fooled_share"] or 0))


def qualification_rows(session: Session) -> list[dict[str, Any]]:
    """Per project: attempts finished and passed, volunteers who passed, and the pass rate of
    first attempts."""
    attempts = session.exec(
        select(
            QualificationAttempt.project_id,
            QualificationAttempt.user_id,
            QualificationAttempt.passed,
            QualificationAttempt.started_at,
        )
        .where(col(QualificationAttempt.finished_at).is_not(None))
        .order_by(col(QualificationAttempt.started_at))
    ).all()
    names = dict(session.exec(select(Project.id, Project.name)).all())
    per: dict[int, dict[str, Any]] = {}
    first_seen: set[tuple[int, int]] = set()
    for project_id, user_id, passed, _started in attempts:
        row = per.setdefault(
            project_id,
            {
                "project": names.get(project_id, str(project_id)),
                "attempts": 0,
                "passed": 0,
                "volunteers_passed": set(),
                "first": 0,
                "first_passed": 0,
            },
        )
        row["attempts"] += 1
        row["passed"] += bool(passed)
        if passed:
            row["volunteers_passed"].add(user_id)
        if (project_id, user_id) not in first_seen:
            first_seen.add((project_id, user_id))
            row["first"] += 1
            row["first_passed"] += bool(passed)
    return [
        {
            "project": row["project"],
            "attempts": row["attempts"],
            "passed": row["passed"],
            "pass_rate": _share(row["passed"], row["attempts"]),
            "volunteers_passed": len(row["volunteers_passed"]),
            "first_attempt_pass_rate": _share(row["first_passed"], row["first"]),
        }
        for row in per.values()
    ]


def tutorial_stats(session: Session, catalog: Catalog) -> dict[str, Any]:
    answered = _answered(session)
    return {
        "lessons": lesson_rows(session, catalog),
        "exercises": exercise_rows(answered),
        "mimics": mimic_rows(answered),
        "qualification": qualification_rows(session),
    }
