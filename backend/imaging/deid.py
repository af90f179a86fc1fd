"""De-identification of DICOM imports by allow-list, and its report (issue 38).

Nothing of a DICOM header is stored but what ``KEPT`` names, and those are geometry and pixel
attributes the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (Table
E.1-1) does not list: the profile has nothing to remove, empty or replace in them. Everything
else (names, IDs, dates, times, UIDs, institutions, devices, descriptions, private tags,
overlays, every nested sequence) is read into memory at most (contrast detection reads the
series description and timing before they are dropped) and never written anywhere: dates are
removed, not shifted; the case gets a random id instead of any UID. A ready library was not
used: on a file with planted identifiers dicom-anonymizer leaked a name in a nested sequence,
dicognito kept a private tag and deid's default recipe kept InstitutionName and StationName
(../shared/ENVIRONMENT.md), while an allow-list cannot leak what it never copies.

The report counts, per import, the attributes the files held by what the profile says of
them (X remove, Z empty, D dummy, U new UID, K keep, C clean, and the combined forms), plus
private and unlisted ones: counts and tag numbers only, never a value.

The profile's table ships as ``deid_profile.json`` (tag -> Basic Profile action; MIT licence
of the innolitics dicom-standard project in ``deid_profile.LICENSE``).
"""

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

PROFILE_FILE = Path(__file__).with_name("deid_profile.json")

# What an import keeps of a header (as voxel geometry and values, never as text): none of
# these is in Table E.1-1.
KEPT: tuple[str, ...] = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
    "PixelData",
)


@functools.cache
def profile() -> tuple[dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """Table E.1-1: exact tags, and the patterned ones (``50xxxxxx``, ``60xx3000``)."""
    actions: dict[str, str] = json.loads(PROFILE_FILE.read_text())["actions"]
    exact = {tag: action for tag, action in actions.items() if "X" not in tag}
    patterns = [
        (re.compile("^" + tag.replace("X", "[0-9A-F]") + "$"), action)
        for tag, action in actions.items()
        if "X" in tag
    ]
    return exact, patterns


def action_of(tag: int) -> str | None:
    """The Basic Profile action for ``tag`` (None: the table does not list it)."""
    text = f"{tag:08X}"
    exact, patterns = profile()
    if text in exact:
        return exact[text]
    for pattern, action in patterns:
        if pattern.match(text):
            return action
    return None


@dataclass
class Report:
    """Attributes met in an import's files, by the profile's action; tags only."""

    files: int = 0
    occurrences: Counter[str] = field(default_factory=Counter)
    tags: dict[str, set[int]] = field(default_factory=dict)

    def _add(self, kind: str, tag: int) -> None:
        self.occurrences[kind] += 1
        self.tags.setdefault(kind, set()).add(tag)

    def count(self, ds: pydicom.Dataset) -> None:
        """Count one file's attributes, nested sequences included."""
        self.files += 1
        self._walk(ds, nested=False)

    def _walk(self, ds: pydicom.Dataset, nested: bool) -> None:
        for element in ds:
            tag = int(element.tag)
            if element.tag.is_private:
                self._add("private", tag)
            else:
                self._add(action_of(tag) or "unlisted", tag)
            if nested:
                self._add("in sequences", tag)
            if element.VR == "SQ":
                for item in element.value or []:
                    self._walk(item, nested=True)

    def merge(self, other: "Report") -> None:
        self.files += other.files
        self.occurrences.update(other.occurrences)
        for kind, tags in other.tags.items():
            self.tags.setdefault(kind, set()).update(tags)

    def summary(self, *, kept: tuple[str, ...], studies: int, series: int) -> dict[str, Any]:
        """The report as stored and printed: counts per action and what was kept."""
        by_action = {
            kind: {"attributes": len(self.tags[kind]), "occurrences": self.occurrences[kind]}
            for kind in sorted(self.tags)
        }
        return {
            "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
            "method": "allow-list: only the kept attributes reach storage, as voxel geometry",
            "files": self.files,
            "studies": studies,
            "series": series,
            "by_action": by_action,
            "kept": list(kept),
            "dates": "removed (none stored)",
            "uids": "none stored; the case id is random",
            "private": "removed",
        }


def describe(report: dict[str, Any]) -> str:
    """One line for the CLI: files, and the attributes removed per action."""
    parts = [
        f"{kind} {counts['attributes']}"
        for kind, counts in report["by_action"].items()
        if kind != "in sequences"
    ]
    nested = report["by_action"].get("in sequences", {}).get("attributes", 0)
    return (
        f"de-identified {report['files']} files: attributes by profile action "
        f"{', '.join(parts)} ({nested} inside sequences); all removed but "
        f"{len(report['kept'])} geometry and pixel attributes"
    )
