"""What a release will hold, read from the database in one transaction as plain data: the
cases whose consent allows research sharing, the fused labels that pass the filters, gold
masks, rater answers, stored volumes and provenance. The build (``build``) then needs no
database until it records what it wrote."""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.errors import InvalidInput
from backend.fusion.models import FusionResult, FusionRun
from backend.fusion.volumes import Box, box_of, gold_masks, usable_labels
from backend.imaging.models import Case, Contrast, Slice, Volume
from backend.projects.models import Project
from backend.quality.models import GoldVersion, RaterStats
from backend.quality.reliability import reliability
from backend.rounds.models import ModelVersion


@dataclass(frozen=True)
class Filters:
    """What a release is asked for."""

    min_labels: int = 1  # answers a slice's fused label must rest on
    min_confidence: float = 0.0  # 1 - the fused label's uncertainty (bits), 0..1
    exclude_raters: tuple[int, ...] = ()  # slices fused with their answers are left out
    per_rater: bool = False  # each rater's own masks too (anonymous ids of the release)

    def as_dict(self) -> dict[str, Any]:
        return {
            "min_labels": self.min_labels,
            "min_confidence": self.min_confidence,
            "exclude_raters": sorted(self.exclude_raters),
            "per_rater": self.per_rater,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Filters":
        return cls(
            min_labels=int(data.get("min_labels", 1)),
            min_confidence=float(data.get("min_confidence", 0.0)),
            exclude_raters=tuple(sorted({int(r) for r in data.get("exclude_raters", [])})),
            per_rater=bool(data.get("per_rater", False)),
        )


@dataclass(frozen=True)
class SliceLabel:
    """One slice's label as the plan holds it (display geometry, keys in storage)."""

    index: int
    box: Box  # crop x0, y0, x1, y1
    key: str
    result_id: int = 0
    run_id: int = 0
    answers: tuple[tuple[int, str], ...] = ()  # (rater user id, mask key)


@dataclass
class CasePlan:
    public_id: str
    licence: str
    scopes: list[str]
    images: bool  # its consent allows publishing images
    shape: tuple[int, int, int]
    volumes: dict[str, str]  # contrast -> storage key (reference included when present)
    held_out: bool
    labels: list[SliceLabel] = field(default_factory=list)
    gold: list[SliceLabel] = field(default_factory=list)
    model_versions: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)


@dataclass
class Plan:
    project: str
    source: str
    cases: list[CasePlan]
    runs: dict[int, dict[str, Any]]
    raters: dict[int, dict[str, Any]]  # user id -> reliability summary
    dropped: dict[str, int]


def _research_cases(session: Session, project: Project) -> list[Case]:
    return list(
        session.exec(
            select(Case)
            .where(Case.project_id == project.id, col(Case.tutorial).is_(False))
            .where(col(Case.consent_research_sharing).is_(True))
            .order_by(col(Case.public_id))
        ).all()
    )


def _crowd_labels(
    session: Session, project_id: int, filters: Filters
) -> tuple[dict[int, list[SliceLabel]], dict[str, int]]:
    """The usable fused labels that pass the filters, by case id; how many were dropped."""
    by_case: dict[int, list[SliceLabel]] = defaultdict(list)
    dropped = {"too_few_answers": 0, "not_confident": 0, "excluded_rater": 0}
    usable = usable_labels(session, project_id)
    results = {
        r.id: r
        for r in session.exec(
            select(FusionResult).where(col(FusionResult.id).in_([u.result_id for u in usable]))
        )
    }
    excluded = set(filters.exclude_raters)
    keys = dict(
        session.exec(
            select(Annotation.id, Annotation.mask_key).where(
                col(Annotation.id).in_([a for r in results.values() for a in r.annotation_ids])
            )
        ).all()
    )
    for label in usable:
        result = results[label.result_id]
        if len(result.raters) < filters.min_labels:
            dropped["too_few_answers"] += 1
            continue
        if 1.0 - float(result.uncertainty or 0.0) < filters.min_confidence:
            dropped["not_confident"] += 1
            continue
        if excluded & set(result.raters):
            dropped["excluded_rater"] += 1
            continue
        answers = tuple(
            (int(u), keys[a]) for u, a in zip(result.raters, result.annotation_ids, strict=True)
        )
        by_case[label.case_id].append(
            SliceLabel(
                label.slice_.index,
                box_of(label.slice_),
                label.soft_key,
                label.result_id,
                result.run_id,
                answers,
            )
        )
    return by_case, dropped


def _empty(project: Project) -> InvalidInput:
    return InvalidInput(
        f"No case of project {project.name!r} is left for a release: none has a final "
        "fused or gold label that passes the filters and consent allowing research sharing",
        code="empty_release",
    )


def check_not_empty(session: Session, project: Project, filters: Filters) -> None:
    """``InvalidInput`` when a release of ``project`` under ``filters`` would hold no
    training case: what ``make_plan`` checks, without reading gold, volumes, models and
    raters case by case (a request is refused before the worker is asked)."""
    assert project.id is not None
    holdout = set(project.holdout_cases)
    cases = {c.id: c for c in _research_cases(session, project) if c.public_id not in holdout}
    by_case, _dropped = _crowd_labels(session, project.id, filters)
    with_labels = {i for i in cases if by_case.get(i or 0)}
    with_labels |= set(
        session.exec(
            select(Slice.case_id)
            .join(GoldVersion, col(GoldVersion.slice_id) == col(Slice.id))
            .where(col(Slice.case_id).in_(list(cases)), col(GoldVersion.retired_at).is_(None))
            .distinct()
        ).all()
    )
    with_flair = session.exec(
        select(Volume.case_id)
        .where(col(Volume.case_id).in_(list(with_labels)), Volume.contrast == Contrast.flair)
        .limit(1)
    ).first()
    if with_flair is None:
        raise _empty(project)


def make_plan(session: Session, project: Project, filters: Filters) -> Plan:
    """The release of ``project`` under ``filters``; ``InvalidInput`` when no case is left."""
    assert project.id is not None
    cases = _research_cases(session, project)
    by_case, dropped = _crowd_labels(session, project.id, filters)
    holdout = set(project.holdout_cases)
    versions = session.exec(select(ModelVersion).where(ModelVersion.project_id == project.id)).all()
    planned: list[CasePlan] = []
    for case in cases:
        assert case.id is not None
        gold = [SliceLabel(s.index, box_of(s), g.mask_key) for s, g in gold_masks(session, case)]
        held_out = case.public_id in holdout
        if not held_out and not by_case[case.id] and not gold:
            continue
        volumes = session.exec(select(Volume).where(Volume.case_id == case.id)).all()
        flair = next((v for v in volumes if v.contrast is Contrast.flair), None)
        if flair is None:
            continue
        trained = [v for v in versions if case.public_id in ((v.snapshot or {}).get("cases") or {})]
        planned.append(
            CasePlan(
                public_id=case.public_id,
                licence=case.licence,
                scopes=sorted(case.scopes),
                images=case.consent_public_images,
                shape=(int(flair.shape[0]), int(flair.shape[1]), int(flair.shape[2])),
                volumes={str(v.contrast): v.storage_key for v in volumes},
                held_out=held_out,
                labels=sorted(by_case[case.id], key=lambda s: s.index),
                gold=gold,
                model_versions=sorted(int(v.id or 0) for v in trained),
                rounds=sorted({int(v.round_id) for v in trained if v.round_id is not None}),
            )
        )
    if not any(not c.held_out for c in planned):
        raise _empty(project)
    run_ids = sorted({s.run_id for c in planned for s in c.labels})
    runs = {
        int(run.id or 0): {
            "method": run.method,
            "scope": str(run.scope),
            "prior": run.prior,
            "iterations": run.iterations,
            "converged": run.converged,
        }
        for run in session.exec(select(FusionRun).where(col(FusionRun.id).in_(run_ids)))
    }
    rater_ids = sorted({u for c in planned for s in c.labels for u, _ in s.answers})
    raters: dict[int, dict[str, Any]] = {}
    for stats in session.exec(
        select(RaterStats).where(
            RaterStats.project_id == project.id, col(RaterStats.user_id).in_(rater_ids)
        )
    ):
        found = reliability(stats.totals())
        raters[stats.user_id] = {
            "gold_answers": stats.gold,
            "answers": stats.answered,
            "sensitivity": round(found.sensitivity.mean, 4),
            "pixel_ppv": round(found.pixel_ppv.mean, 4),
            "lesion_sensitivity": round(found.lesion_sensitivity.mean, 4),
            "lesion_ppv": round(found.lesion_ppv.mean, 4),
            "trust": str(stats.trust),
        }
    sources = sorted({c.source for c in cases})
    return Plan(
        project=project.name,
        source="; ".join(sources) or "mscrowd",
        cases=planned,
        runs=runs,
        raters={u: raters.get(u, {}) for u in rater_ids},
        dropped=dropped,
    )
