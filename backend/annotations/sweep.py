"""Storage consistent with the database after a crash.

A mask is written to storage before its row commits (and deleted again on rollback); a server
killed between the two leaves a file with no row. Imports write a case's images under
``cases/<public id>/`` before its rows commit, with the same gap; cases staged for the ML
worker's brain mask wait under ``staging/`` (swept after a day). ``check`` finds such orphans
(older than a grace period, so a transaction still in flight is never touched) and, with
``fix``, deletes them; rows whose file is missing are reported, never invented.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion.models import FusionResult
from backend.imaging.models import Case
from backend.imaging.staging import STAGING
from backend.quality.models import GoldScore, GoldVersion
from backend.releases.build import ROOT as RELEASES
from backend.releases.models import Release, ReleaseStatus

STAGING_GRACE = timedelta(days=1)


@dataclass
class StorageReport:
    """Orphan blobs (deleted when fixing), young blobs left alone, and rows without a blob."""

    orphans: list[str] = field(default_factory=list)
    too_young: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    deleted: int = 0

    @property
    def consistent(self) -> bool:
        return not self.orphans and not self.missing


def _old_enough(storage: Storage, key: str, cutoff: datetime) -> bool:
    written = storage.modified(key)
    return written is None or written < cutoff


def check(
    *,
    session: Session,
    storage: Storage,
    fix: bool = False,
    grace: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
) -> StorageReport:
    """Compare answer masks, gold masks, feedback overlays and case folders in storage with
    the database."""
    cutoff = (now or utcnow()) - grace
    report = StorageReport()
    mask_keys = set(session.exec(select(Annotation.mask_key)).all())
    # Files each written before their row commits: answers, gold masks, feedback overlays,
    # fused soft labels.
    owned = {
        "annotations": mask_keys,
        "gold": set(session.exec(select(GoldVersion.mask_key)).all()),
        "feedback": set(session.exec(select(GoldScore.overlay_key)).all()),
        "fusion": {
            key for key in session.exec(select(FusionResult.soft_key)).all() if key is not None
        },  # withdrawn versions have no file
    }
    for prefix, keys in owned.items():
        for key in storage.list(prefix):
            if key in keys:
                continue
            young = not _old_enough(storage, key, cutoff)
            (report.too_young if young else report.orphans).append(key)
    cases = set(session.exec(select(Case.public_id)).all())
    for key in storage.list("cases"):
        public_id = key.split("/")[1] if key.count("/") >= 2 else ""
        if public_id in cases:
            continue
        (report.orphans if _old_enough(storage, key, cutoff) else report.too_young).append(key)
    # Cases staged for the ML worker's brain mask (``imaging.staging``) wait in its queue:
    # swept only after a day.
    staged_cutoff = min(cutoff, (now or utcnow()) - STAGING_GRACE)
    for key in storage.list(STAGING):
        young = not _old_enough(storage, key, staged_cutoff)
        (report.too_young if young else report.orphans).append(key)
    # Release files: kept while their release is ready (served) or building (being written);
    # a failed or superseded release's, or an unknown one's, are orphans.
    releases = dict(session.exec(select(Release.name, Release.status)).all())
    for key in storage.list(RELEASES):
        state = releases.get(key.split("/")[1] if key.count("/") >= 2 else "")
        if state is ReleaseStatus.ready:
            continue
        young = state is ReleaseStatus.building or not _old_enough(storage, key, cutoff)
        (report.too_young if young else report.orphans).append(key)
    report.missing = sorted(k for keys in owned.values() for k in keys if not storage.exists(k))
    if fix:
        for key in report.orphans:
            storage.delete(key)
            report.deleted += 1
    return report
