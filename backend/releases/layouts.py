"""The files that describe a release, as pure functions of what it holds: nnU-Net v2's
``dataset.json``, a MONAI decathlon datalist, MLCommons Croissant metadata, the release README
and the SHA-256 checksum list. JSON is written with sorted keys and no time of building, so
equal releases give equal bytes."""

import json
from dataclasses import dataclass, field
from typing import Any

from backend.releases.volumes import BACKGROUND, IGNORE, LESION, SOFT_SCALE

CHANNELS = ("flair", "t1", "t2")
CHANNEL_NAMES = {"flair": "FLAIR", "t1": "T1", "t2": "T2"}
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
CITATION = (
    "mscrowd crowd-sourced MS lesion labels, release {name}. Images: {sources}. "
    "Labels: fused from volunteers' answers with crowd STAPLE (mscrowd)."
)


def dumps(value: Any) -> bytes:
    """JSON the one way a release writes it: sorted keys, two-space indent, a final newline."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass
class Entry:
    """A case as the layouts list it: its id, the channels with images (empty: labels only),
    and its files by role."""

    case: str
    channels: list[str]
    files: dict[str, str] = field(default_factory=dict)
    held_out: bool = False


def dataset_json(name: str, channels: list[str], training: list[Entry], licence: str) -> bytes:
    """nnU-Net v2's ``dataset.json``: channels, labels with ``ignore`` (the highest value,
    on unlabelled slices), the training cases' count and file ending."""
    return dumps(
        {
            "name": name,
            "description": "MS lesion labels fused from citizen scientists' answers (mscrowd)",
            "channel_names": {str(n): CHANNEL_NAMES[c] for n, c in enumerate(channels)},
            "labels": {"background": BACKGROUND, "lesion": LESION, "ignore": IGNORE},
            "numTraining": len(training),
            "file_ending": ".nii.gz",
            "licence": licence,
        }
    )


def datalist_json(training: list[Entry], held_out: list[Entry]) -> bytes:
    """A MONAI decathlon datalist (``monai.data.load_decathlon_datalist``): ``training`` with
    images, the nnU-Net label and the soft, hard and labelled-slices masks; ``validation``:
    the project's held-out cases with their expert reference masks; ``test``: held-out cases
    without one. Paths are relative to the release's root (``base_dir``)."""

    def item(entry: Entry, label: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "case": entry.case,
            "image": [entry.files[f"image_{c}"] for c in entry.channels],
        }
        if label is not None:
            row["label"] = label
        for role in ("soft", "hard", "labelled"):
            if role in entry.files:
                row[role] = entry.files[role]
        return row

    return dumps(
        {
            "description": "mscrowd release: images by channel (FLAIR, T1, T2), labels",
            "training": [item(e, e.files["label"]) for e in training],
            "validation": [
                item(e, e.files["reference"]) for e in held_out if "reference" in e.files
            ],
            "test": [item(e, None) for e in held_out if "reference" not in e.files],
        }
    )


def croissant_json(name: str, licence: str, sources: str, files: dict[str, str], url: str) -> bytes:
    """MLCommons Croissant 1.0 metadata: the dataset, its descriptive files with their
    checksums, and the NIfTI file sets by role."""
    described = sorted(p for p in files if p.endswith((".json", ".md", "SHA256SUMS")))
    formats = {".json": "application/json", ".md": "text/markdown"}
    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": path,
            "name": path,
            "contentUrl": path,
            "encodingFormat": next(
                (v for k, v in formats.items() if path.endswith(k)), "text/plain"
            ),
            "sha256": files[path],
        }
        for path in described
    ]
    sets = {
        "images": "imagesTr/*.nii.gz",
        "labels": "labelsTr/*.nii.gz",
        "soft-labels": "soft/*.nii.gz",
        "hard-labels": "hard/*.nii.gz",
        "labelled-slices": "labelled/*.nii.gz",
        "gold": "gold/*.nii.gz",
        "held-out-images": "imagesTs/*.nii.gz",
        "held-out-labels": "labelsTs/*.nii.gz",
        "rater-masks": "raters/*/*.nii.gz",
    }
    for set_id, pattern in sets.items():
        folder = pattern.split("/", 1)[0]
        if any(p.startswith(folder + "/") for p in files):
            distribution.append(
                {
                    "@type": "cr:FileSet",
                    "@id": set_id,
                    "name": set_id,
                    "encodingFormat": "application/gzip",
                    "includes": pattern,
                }
            )
    return dumps(
        {
            "@context": CROISSANT_CONTEXT,
            "@type": "sc:Dataset",
            "name": name,
            "description": (
                "Multiple sclerosis lesion labels on brain MRI, drawn by trained citizen "
                "scientists, scored against expert gold and fused (crowd STAPLE); soft and "
                "hard labels, which slices carry labels, expert gold masks and images where "
                "their consent allows."
            ),
            "conformsTo": "http://mlcommons.org/croissant/1.0",
            "license": licence,
            "url": url,
            "version": "1.0.0",
            "citeAs": CITATION.format(name=name, sources=sources),
            "distribution": distribution,
        }
    )


def sha256sums(files: dict[str, str]) -> bytes:
    """``sha256sum -c`` format, sorted by path."""
    return "".join(f"{files[p]}  {p}\n" for p in sorted(files)).encode()


def _answers(count: int) -> str:
    return f"{count} answer" + ("" if count == 1 else "s")


def _dataset_name(release: str) -> str:
    """nnU-Net's dataset name part: letters and digits only."""
    return "".join(c for c in release.title() if c.isalnum())[:40] or "Mscrowd"


def readme(manifest: dict[str, Any]) -> bytes:
    """The release's README: what each file is, how it was made, licence and citation."""
    stats = manifest["stats"]
    filters = manifest["filters"]
    lines = [
        f"# {manifest['name']}: MS lesion labels from mscrowd",
        "",
        f"{stats['cases']} cases ({stats['cases_with_images']} with images, the rest labels "
        f"only), {stats['labelled_slices']} labelled slices, {stats['lesion_voxels']} lesion "
        f"voxels in the hard labels. Project: {manifest['project']}.",
        "",
        "## Files",
        "",
        "- `imagesTr/CASE_0000.nii.gz`, `_0001`, `_0002`: FLAIR, T1, T2 (channels in "
        "`dataset.json`) on the case's stored grid: the FLAIR's grid, reoriented to the slices' "
        "plane; the other contrasts resampled onto it; voxels outside the dilated brain mask are "
        "zero (no skull, no face). Only cases whose consent allows publishing images have them.",
        "- `labelsTr/CASE.nii.gz`: the training label: 1 lesion, 0 background, 2 **ignore** on "
        "every slice no one labelled.",
        "- `soft/CASE.nii.gz`: fused P(lesion) as uint8 with `scl_slope` "
        f"{SOFT_SCALE:.10f} (value / 255); 0 on unlabelled slices.",
        "- `hard/CASE.nii.gz`: fused hard mask (P >= 0.5), 0/1.",
        "- `labelled/CASE.nii.gz`: 1 on every slice that carries a crowd or gold label.",
        "- `gold/CASE.nii.gz`: expert (gold) masks, 2 on slices without one.",
        "- `imagesTs/`, `labelsTs/`: the project's held-out cases and their expert reference "
        "masks (never crowd-labelled, never trained on by the project).",
        "- `raters/CASE/RNNN.nii.gz` (when asked for): each rater's own answers, 2 where that "
        "rater gave none; `RNNN` is an id of this release only.",
        "- `previews/CASE.png`: the most lesioned labelled slice with the hard label's outline.",
        "- `dataset.json` (nnU-Net v2), `datalist.json` (MONAI decathlon datalist), "
        "`manifest.json` (provenance per case), `croissant.json` (MLCommons Croissant), "
        "`SHA256SUMS` (`sha256sum -c SHA256SUMS`).",
        "",
        "## Partial labels and nnU-Net",
        "",
        "Volunteers label some slices of a case, not all. Unlabelled slices are not "
        "background: `labelsTr` marks them 2, which `dataset.json` names `ignore`. nnU-Net v2 "
        "then trains on labelled voxels only (the ignore label must be the highest value, as "
        "here). With MONAI, mask the loss with `labelled` (or `label != 2`).",
        "",
        "## Training with nnU-Net v2",
        "",
        "nnU-Net reads datasets from `$nnUNet_raw/DatasetNNN_Name/`. Unpack the release, move "
        "its folder there under a free id, then plan and train (2-D: the labels are per slice):",
        "",
        "```sh",
        f'mv {manifest["name"]} "$nnUNet_raw/Dataset501_{_dataset_name(manifest["name"])}"',
        "nnUNetv2_plan_and_preprocess -d 501 --verify_dataset_integrity",
        "nnUNetv2_train 501 2d 0",
        "```",
        "",
        "## Loading with MONAI",
        "",
        "```python",
        "from monai.data import load_decathlon_datalist",
        "from monai.transforms import LoadImaged",
        "",
        f'root = "{manifest["name"]}"',
        'train = load_decathlon_datalist(f"{root}/datalist.json", True, "training", root)',
        'load = LoadImaged(["image", "label"], image_only=True, ensure_channel_first=True)',
        "item = load(train[0])  # image: FLAIR, T1, T2 as channels; label: 0, 1, 2 = ignore",
        "```",
        "",
        "`validation` in `datalist.json` is the held-out fold (`imagesTs`, `labelsTs`).",
        "",
        "## How it was made",
        "",
        "Volunteers passed a qualification test, then outlined lesions on FLAIR slices; hidden "
        "expert gold slices scored them. Each slice's answers were fused with crowd STAPLE "
        "(rater sensitivities and specificities from gold and agreement), outlined by the "
        "project's rule; only slices whose label is final (enough answers, confident or "
        f"settled) are here. Filters: at least {_answers(filters['min_labels'])} per slice, fused "
        f"confidence at least {filters['min_confidence']}, raters left out: "
        f"{filters['exclude_raters']}. `manifest.json` names the fusion runs, versions, "
        "rounds and model versions used.",
        "",
        "## Licence and citation",
        "",
        f"Licences per case are in `manifest.json` ({', '.join(stats['licences'])}). Cite: "
        f"{manifest['citation']}",
        "",
    ]
    if manifest.get("superseded"):
        lines[1:1] = ["", f"**Superseded**: {manifest['superseded']}", ""]
    return "\n".join(lines).encode()
