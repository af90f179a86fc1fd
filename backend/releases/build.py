"""Building a release from its plan: each case's NIfTI files, previews, the layouts' files,
the manifest and checksums, written to storage under ``releases/<name>/`` one case at a time
(memory holds one case), with progress reported as it goes."""

import hashlib
import hmac
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.core.storage import Storage
from backend.fusion.volumes import place
from backend.quality.gold import read_mask
from backend.releases import layouts
from backend.releases.plan import CasePlan, Filters, Plan
from backend.releases.volumes import (
    IGNORE,
    SOFT_SCALE,
    CaseLabels,
    affine_of,
    encode,
    normalised,
    preview_png,
)

ROOT = "releases"
# Progress callback: (percent, seconds left or None, what it is doing).
Progress = Callable[[float, float | None, str], None]


def prefix_of(name: str) -> str:
    return f"{ROOT}/{name}"


@dataclass
class Written:
    """The files written so far: path -> (size, sha256)."""

    storage: Storage
    prefix: str
    files: dict[str, tuple[int, str]] = field(default_factory=dict)

    def put(self, path: str, data: bytes) -> str:
        self.storage.put(f"{self.prefix}/{path}", data)
        digest = hashlib.sha256(data).hexdigest()
        self.files[path] = (len(data), digest)
        return path

    def digests(self) -> dict[str, str]:
        return {p: d for p, (_s, d) in self.files.items()}


def _plane(storage: Storage, key: str) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def case_labels(
    storage: Storage, case: CasePlan, rater_ids: dict[int, str], per_rater: bool
) -> CaseLabels:
    """The case's labels on its grid, read from storage."""
    shape = case.shape
    soft = np.zeros(shape, dtype=np.uint8)
    labelled = np.zeros(shape[2], dtype=bool)
    gold = np.zeros(shape, dtype=np.uint8)
    gold_slices = np.zeros(shape[2], dtype=bool)
    found = CaseLabels(soft, labelled, gold, gold_slices)
    for label in case.labels:
        place(soft, label.box, label.index, _plane(storage, label.key))
        labelled[label.index] = True
        if per_rater:
            for user, key in label.answers:
                rater = rater_ids[user]
                if rater not in found.raters:
                    found.raters[rater] = np.zeros(shape, dtype=np.uint8)
                    found.rater_slices[rater] = np.zeros(shape[2], dtype=bool)
                place(
                    found.raters[rater],
                    label.box,
                    label.index,
                    read_mask(storage, key).astype(np.uint8),
                )
                found.rater_slices[rater][label.index] = True
    for label in case.gold:
        place(gold, label.box, label.index, read_mask(storage, label.key).astype(np.uint8))
        gold_slices[label.index] = True
    return found


def release_rater_ids(users: Iterable[int], name: str, secret: str) -> dict[int, str]:
    """``R001``... for the release's raters, in an order keyed by the server's secret and the
    release's name: the same on every build of the release, unrelated to account ids (nor to
    another release's order), so a rater's numbers cannot be tied to an account."""

    def key(user: int) -> str:
        return hmac.new(secret.encode(), f"{name}:{user}".encode(), "sha256").hexdigest()

    return {u: f"R{n + 1:03d}" for n, u in enumerate(sorted(users, key=key))}


def _channels(cases: list[CasePlan]) -> list[str]:
    """The contrasts every case with images has (FLAIR always): nnU-Net needs each channel
    of every case."""
    with_images = [c for c in cases if c.images]
    return [
        contrast
        for contrast in layouts.CHANNELS
        if with_images and all(contrast in c.volumes for c in with_images)
    ] or ["flair"]


def _write_case(
    out: Written,
    storage: Storage,
    case: CasePlan,
    channels: list[str],
    rater_ids: dict[int, str],
    per_rater: bool,
) -> tuple[layouts.Entry, dict[str, Any]]:
    name = case.public_id
    stored = {c: storage.get(k) for c, k in case.volumes.items() if c in (*channels, "reference")}
    affine = affine_of(stored["flair"])
    entry = layouts.Entry(name, channels if case.images else [], held_out=case.held_out)
    images_folder, labels_folder = (
        ("imagesTs", "labelsTs") if case.held_out else ("imagesTr", "labelsTr")
    )
    if case.images:
        for n, contrast in enumerate(channels):
            entry.files[f"image_{contrast}"] = out.put(
                f"{images_folder}/{name}_{n:04d}.nii.gz", normalised(stored[contrast])
            )
    labels = case_labels(storage, case, rater_ids, per_rater)
    info: dict[str, Any] = {
        "case": name,
        "images": case.images,
        "held_out": case.held_out,
        "licence": case.licence,
        "consent": case.scopes,
        "shape": list(case.shape),
        "affine": [[round(float(v), 6) for v in row] for row in affine],
        "labelled_slices": [int(i) for i in np.flatnonzero(labels.labelled)],
        "gold_slices": [int(i) for i in np.flatnonzero(labels.gold_slices)],
        "fused_results": [s.result_id for s in case.labels],
        "fusion_runs": sorted({s.run_id for s in case.labels}),
        "model_versions_trained_on_it": case.model_versions,
        "rounds": case.rounds,
    }
    if case.held_out:
        if "reference" in stored:
            entry.files["reference"] = out.put(
                f"{labels_folder}/{name}.nii.gz", normalised(stored["reference"])
            )
    else:
        hard = labels.hard
        if case.images:
            entry.files["label"] = out.put(
                f"{labels_folder}/{name}.nii.gz", encode(labels.training(), affine)
            )
        entry.files["soft"] = out.put(
            f"soft/{name}.nii.gz", encode(labels.soft, affine, slope=SOFT_SCALE)
        )
        entry.files["hard"] = out.put(f"hard/{name}.nii.gz", encode(hard, affine))
        slices = np.zeros(case.shape, dtype=np.uint8)
        slices[:, :, labels.labelled | labels.gold_slices] = 1
        entry.files["labelled"] = out.put(f"labelled/{name}.nii.gz", encode(slices, affine))
        if labels.gold_slices.any():
            entry.files["gold"] = out.put(
                f"gold/{name}.nii.gz",
                encode(labels.with_unlabelled(labels.gold, labels.gold_slices), affine),
            )
        for rater in sorted(labels.raters):
            entry.files[f"rater_{rater}"] = out.put(
                f"raters/{name}/{rater}.nii.gz",
                encode(
                    labels.with_unlabelled(labels.raters[rater], labels.rater_slices[rater]),
                    affine,
                ),
            )
        if case.images:
            flair = _flair(stored["flair"])
            entry.files["preview"] = out.put(
                f"previews/{name}.png", preview_png(flair, hard, labels.labelled)
            )
        info["lesion_voxels"] = int(hard.sum())
        info["raters"] = sorted({rater_ids[u] for s in case.labels for u, _ in s.answers})
    info["files"] = dict(sorted(entry.files.items()))
    return entry, info


def _flair(stored: bytes) -> NDArray[np.float32]:
    import gzip

    import nibabel as nib

    image = nib.Nifti1Image.from_bytes(gzip.decompress(stored))
    return np.asarray(image.dataobj, dtype=np.float32)


@dataclass
class Built:
    files: dict[str, tuple[int, str]]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    cases: list[str]


def build(
    storage: Storage,
    name: str,
    plan: Plan,
    filters: Filters,
    *,
    url: str,
    secret: str = "",
    progress: Progress | None = None,
) -> Built:
    """Write the release's files under ``releases/<name>/``; what was written. The caller
    deletes the prefix if this raises."""
    out = Written(storage, prefix_of(name))
    channels = _channels(plan.cases)
    rater_ids = release_rater_ids(plan.raters, name, secret)
    training: list[layouts.Entry] = []
    held_out: list[layouts.Entry] = []
    infos: list[dict[str, Any]] = []
    began = time.monotonic()
    total = len(plan.cases)
    for n, case in enumerate(plan.cases):
        entry, info = _write_case(out, storage, case, channels, rater_ids, filters.per_rater)
        (held_out if case.held_out else training).append(entry)
        infos.append(info)
        if progress is not None:
            elapsed = time.monotonic() - began
            left = elapsed / (n + 1) * (total - n - 1)
            progress(90.0 * (n + 1) / total, left, f"case {n + 1} of {total}")
    with_images = [e for e in training if e.channels]
    licences = sorted({c.licence for c in plan.cases})
    stats = {
        "cases": len(training),
        "cases_with_images": len(with_images),
        "held_out_cases": len(held_out),
        "labelled_slices": sum(len(i["labelled_slices"]) for i in infos if not i["held_out"]),
        "gold_slices": sum(len(i["gold_slices"]) for i in infos if not i["held_out"]),
        "lesion_voxels": sum(i.get("lesion_voxels", 0) for i in infos),
        "raters": len(rater_ids),
        "dropped_slices": plan.dropped,
        "licences": licences,
        "channels": [layouts.CHANNEL_NAMES[c] for c in channels],
    }
    provenance = {
        "fusion_runs": plan.runs,
        "fused_results": sorted(r for i in infos for r in i["fused_results"]),
        "model_versions": sorted({v for c in plan.cases for v in c.model_versions}),
        "rounds": sorted({r for c in plan.cases for r in c.rounds}),
    }
    licence = licences[0] if len(licences) == 1 else "various (see manifest.json)"
    out.put("dataset.json", layouts.dataset_json(name, channels, with_images, licence))
    out.put("datalist.json", layouts.datalist_json(with_images, held_out))
    manifest = {
        "name": name,
        "project": plan.project,
        # Raters left out are counted, not named: account ids stay on the platform.
        "filters": {**filters.as_dict(), "exclude_raters": len(filters.exclude_raters)},
        "stats": stats,
        "provenance": provenance,
        "raters": {rater_ids[u]: plan.raters[u] for u in sorted(plan.raters)},
        "soft_label_scale": SOFT_SCALE,
        "ignore_label": IGNORE,
        "citation": layouts.CITATION.format(name=name, sources=plan.source),
        "cases": infos,
        "superseded": None,
    }
    out.put("manifest.json", layouts.dumps(manifest))
    out.put("README.md", layouts.readme(manifest))
    out.put(
        "croissant.json",
        layouts.croissant_json(name, licence, plan.source, out.digests(), url),
    )
    out.put("SHA256SUMS", layouts.sha256sums(out.digests()))
    if progress is not None:
        progress(100.0, 0.0, "written")
    return Built(
        files=dict(sorted(out.files.items())),
        stats=stats,
        provenance=provenance,
        cases=[c.public_id for c in plan.cases],
    )
