"""Lessons and the field guide, read from ``tutorials/`` and validated, with their translations.

Layout (tutorials/README.md describes the schema)::

    lessons/<NN>-<slug>/<language>.md    YAML front matter between --- lines, then Markdown
    field-guide/<language>.yaml

English is the source: every lesson and the field guide must have it. A translation whose
``version`` is behind English is stale and not served; English is served in its place.
"""

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from backend.core.errors import NotFound
from backend.imaging.mimics import MimicKind
from backend.tutorials.languages import (
    ENGLISH,
    LANGUAGE_TAG,
    fallbacks,
    is_language_tag,
    negotiate,
)
from backend.tutorials.models import LesionLoad, MaterialKind
from backend.tutorials.sources import (
    Problem,
    Source,
    images,
    parse_yaml,
    read_text,
    split_front_matter,
)

_T = TypeVar("_T")

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"

SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Slug = Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]
Language = Annotated[str, StringConstraints(pattern=f"^{LANGUAGE_TAG}$")]
# Titles and tells are one line; a stray newline would break the layout they are shown in.
Title = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[^\n]+$")]
Line = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\n]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
# Strict: YAML's "3" is a string, and true is not 1.
Version = Annotated[int, Strict(), Field(ge=1)]


class MaterialContrast(StrEnum):
    """The contrasts a volunteer sees (the values of ``backend.imaging.models.Contrast``)."""

    flair = "flair"
    t1 = "t1"
    t2 = "t2"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Material(_Content):
    """A selector the backend resolves to a real slice: content never embeds an image."""

    kind: MaterialKind
    load: LesionLoad | None = None  # lesion only; none: any load
    mimic: MimicKind | None = None  # mimic only, and required there
    contrast: MaterialContrast = MaterialContrast.flair  # the contrast shown first

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        if self.load is not None and self.kind is not MaterialKind.lesion:
            raise ValueError("'load' is only for kind: lesion")
        if (self.mimic is not None) != (self.kind is MaterialKind.mimic):
            raise ValueError("'mimic' names the mimic of kind: mimic, and only there")
        return self


class Figure(_Content):
    """An example image in a lesson, placed in its body by ``![caption](figure:<id>)``."""

    id: Slug
    material: Material
    caption: Text


class Exercise(_Content):
    """A practice slice with instant feedback; mimic and empty material expect nothing painted."""

    id: Slug
    material: Material
    prompt: Text
    explanation: Text  # shown after the answer


class LessonMeta(_Content):
    """A lesson file's front matter."""

    id: Slug
    title: Title
    order: Annotated[int, Strict(), Field(ge=1, le=99)]
    version: Version
    language: Language
    minutes: Annotated[int, Strict(), Field(ge=1, le=10)]
    exercises: list[Exercise]
    figures: list[Figure] = []


class Lesson(LessonMeta):
    """A lesson in one language: its front matter, its Markdown body and its file."""

    body: str
    path: Path  # relative to the tutorials folder

    def exercise(self, exercise_id: str) -> Exercise:
        """The exercise ``exercise_id`` of this lesson."""
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        raise TutorialNotFound(f"Lesson {self.id!r} has no exercise {exercise_id!r}")


class EntryKind(StrEnum):
    lesion = "lesion"
    mimic = "mimic"


class FieldGuideEntry(_Content):
    """One thing a volunteer may meet on a slice: a kind of lesion, or a mimic to leave alone."""

    id: Slug
    kind: EntryKind
    title: Title
    tell: Line  # how to recognise it at a glance
    body: Text
    keywords: Annotated[list[Title], Field(min_length=1)]
    # None where no material shows it (a motion artefact is not a selectable kind).
    material: Material | None = None
    looks_like: Title | None = None  # mimic only: what it is taken for
    action: Title | None = None  # mimic only: what to do ("leave unlabelled")

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        mimic = self.kind is EntryKind.mimic
        if mimic and (self.looks_like is None or self.action is None):
            raise ValueError("a mimic needs 'looks_like' and 'action'")
        if not mimic and (self.looks_like is not None or self.action is not None):
            raise ValueError("'looks_like' and 'action' are for mimics only")
        return self


class FieldGuide(_Content):
    """The field guide in one language."""

    version: Version
    language: Language
    entries: Annotated[list[FieldGuideEntry], Field(min_length=1)]


class ContentError(ValueError):
    """Tutorial content that does not validate: one ``path:line: message`` line per problem."""

    def __init__(self, problems: Iterable[object]) -> None:
        self.problems = [str(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


class TutorialNotFound(NotFound, KeyError):
    """No such lesson, exercise or field guide (a ``KeyError`` too, for plain lookups)."""

    def __str__(self) -> str:
        # KeyError would quote the message.
        return self.message


class Catalog:
    """The validated content: each lesson and the field guide in every language served."""

    def __init__(
        self,
        lessons: Iterable[Lesson],
        field_guides: Iterable[FieldGuide] = (),
        stale: Iterable[Path] = (),
    ) -> None:
        """Lessons and guides as validated by ``load_catalog``; ``stale``: files not served."""
        self._lessons: dict[str, dict[str, Lesson]] = {}
        for lesson in sorted(lessons, key=lambda lesson: (lesson.order, lesson.language)):
            self._lessons.setdefault(lesson.id, {})[lesson.language] = lesson
        self._guides = {guide.language: guide for guide in field_guides}
        self._stale = sorted(stale)

    def languages(self) -> list[str]:
        """Every language something is served in, English first."""
        found = {language for by in self._lessons.values() for language in by} | set(self._guides)
        return sorted(found, key=lambda language: (language != ENGLISH, language))

    def stale(self) -> list[Path]:
        """Translations behind their English version (not served), relative to the root."""
        return list(self._stale)

    def pick_language(self, accept_language_header: str | None) -> str:
        """The best language served for an HTTP ``Accept-Language`` header, else English."""
        return negotiate(accept_language_header, self.languages())

    def lessons(self, language: str) -> list[Lesson]:
        """Every lesson by ``order``, each in the best translation there is for ``language``."""
        return [self._best(by, language) for by in self._lessons.values()]

    def lesson(self, lesson_id: str, language: str) -> Lesson:
        """The lesson ``lesson_id`` in the best translation there is for ``language``."""
        if lesson_id not in self._lessons:
            raise TutorialNotFound(f"No lesson {lesson_id!r}")
        return self._best(self._lessons[lesson_id], language)

    def field_guide(self, language: str) -> FieldGuide:
        """The field guide in the best translation there is for ``language``."""
        if not self._guides:
            raise TutorialNotFound("No field guide")
        return self._best(self._guides, language)

    @staticmethod
    def _best(by_language: dict[str, _T], language: str) -> _T:
        found = (by_language[tag] for tag in fallbacks(language) if tag in by_language)
        # English is always there from load_catalog; a catalog built by hand may lack it.
        return next(found, None) or next(iter(by_language.values()))


LESSON_FOLDER = re.compile(r"(?P<order>[0-9]{2})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)")
FIGURE_TARGET = "figure:"
_V = TypeVar("_V", Lesson, FieldGuide)


def _body_problems(meta: LessonMeta, source: Source, body: str, first: int) -> list[Problem]:
    """Placed figures that are not listed, listed ones never placed, and embedded images."""
    listed = {figure.id for figure in meta.figures}
    placed = set()
    problems = []
    if not body.strip():
        problems.append(Problem(source.path, first, "the Markdown after the front matter is empty"))
    for line, target in images(body, first):
        figure = target.removeprefix(FIGURE_TARGET)
        placed.add(figure)
        if not target.startswith(FIGURE_TARGET):
            message = "lessons embed no image files: place a figure, ![caption](figure:<id>)"
        elif figure not in listed:
            message = f"figure {figure!r} is placed here but not listed in 'figures'"
        else:
            continue
        problems.append(Problem(source.path, line, message))
    for index, item in enumerate(meta.figures):
        if item.id not in placed:
            message = f"figure {item.id!r} is never placed: add ![caption](figure:{item.id})"
            problems.append(source.problem(("figures", index, "id"), message))
    return problems


def _lesson_problems(
    meta: LessonMeta, source: Source, folder: re.Match[str], stem: str
) -> list[Problem]:
    """What the schema cannot see: the file's name and folder, and ids used twice."""
    problems = []
    if meta.id != folder["slug"]:
        problems.append(source.problem(("id",), f"id {meta.id!r} differs from its folder's slug"))
    if meta.order != int(folder["order"]):
        problems.append(source.problem(("order",), f"order {meta.order} differs from its folder"))
    if meta.language != stem:
        message = f"language {meta.language!r} differs from the file name {stem}.md"
        problems.append(source.problem(("language",), message))
    # One namespace for exercises and figures: either may be linked to by its id alone.
    items = [(("exercises", i, "id"), e.id) for i, e in enumerate(meta.exercises)]
    items += [(("figures", i, "id"), f.id) for i, f in enumerate(meta.figures)]
    items.sort(key=lambda item: source.line(item[0]))  # the later one in the file is the copy
    for position, (loc, value) in enumerate(items):
        if value in [earlier for _, earlier in items[:position]]:
            problems.append(source.problem(loc, f"duplicate id {value!r}"))
    return problems


def _read_lesson(
    path: Path, rel: str, folder: re.Match[str]
) -> tuple[Lesson | None, Source | None, list[Problem]]:
    """One lesson file, validated; no lesson where anything is wrong with it."""
    text, problems = read_text(path, rel)
    if text is None:
        return None, None, problems
    parts = split_front_matter(text, rel)
    if isinstance(parts, Problem):
        return None, None, [parts]
    front, body, first = parts
    # The front matter's first line is the file's second: offset 1.
    source, problems = parse_yaml(front, rel, offset=1)
    if source is None:
        return None, None, problems
    try:
        meta = LessonMeta.model_validate(source.data)
    except ValidationError as error:
        return None, source, problems + source.invalid(error)
    problems += _lesson_problems(meta, source, folder, path.stem)
    problems += _body_problems(meta, source, body, first)
    if problems:
        return None, source, problems
    return Lesson(**dict(meta), body=body.strip("\n") + "\n", path=Path(rel)), source, []


def _translations(
    english: _V, translations: list[tuple[_V, Source]], problems: list[Problem], stale: list[Path]
) -> list[_V]:
    """The translations to serve: at English's version, with the same graded and linked data."""
    served = []
    for item, source in translations:
        if item.version < english.version:
            stale.append(Path(source.path))
        elif item.version > english.version:
            message = f"version {item.version} is ahead of English (version {english.version})"
            problems.append(source.problem(("version",), message))
        elif differs := _differences(item, english):
            message = " and ".join(differs) + " differ from English at the same version"
            problems.append(source.problem((differs[0],), message))
        else:
            served.append(item)
    return served


def _differences(ours: Lesson | FieldGuide, english: Lesson | FieldGuide) -> list[str]:
    """Fields a translation changed that it must keep: exercises are graded and figures and
    entries resolved by id and material; only their words are translated."""

    def key(items: list[Exercise] | list[Figure] | list[FieldGuideEntry]) -> list[object]:
        return [(item.id, getattr(item, "kind", None), item.material) for item in items]

    fields = ("exercises", "figures") if isinstance(ours, Lesson) else ("entries",)
    return [f for f in fields if key(getattr(ours, f)) != key(getattr(english, f))]


def _visible(folder: Path) -> list[Path]:
    """A folder's entries by name, without hidden ones (.DS_Store, editor swap files)."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


def _load_lessons(root: Path, problems: list[Problem], stale: list[Path]) -> list[Lesson]:
    """Every lesson folder under ``root/lessons``: English and the translations served."""
    served: list[Lesson] = []
    english: list[tuple[Lesson, Source]] = []
    lessons = root / "lessons"
    for folder in _visible(lessons) if lessons.is_dir() else []:
        rel = folder.relative_to(root).as_posix()
        name = LESSON_FOLDER.fullmatch(folder.name)
        if not folder.is_dir() or name is None:
            problems.append(Problem(rel, 1, "expected a lesson folder named <NN>-<slug>"))
            continue
        found: dict[str, tuple[Lesson, Source]] = {}
        for path in _visible(folder):
            if path.suffix != ".md" or not is_language_tag(path.stem):
                message = "expected <language>.md: en.md, de.md, pt-BR.md"
                problems.append(Problem(f"{rel}/{path.name}", 1, message))
                continue
            lesson, source, wrong = _read_lesson(path, f"{rel}/{path.name}", name)
            problems += wrong
            if lesson is not None and source is not None:
                found[lesson.language] = (lesson, source)
        if ENGLISH not in found:
            if not (folder / f"{ENGLISH}.md").is_file():
                message = "missing: a lesson needs its English file, the source of translations"
                problems.append(Problem(f"{rel}/{ENGLISH}.md", 1, message))
            continue
        english.append(found.pop(ENGLISH))
        served += [
            english[-1][0],
            *_translations(english[-1][0], [*found.values()], problems, stale),
        ]
    for field in ("order", "id"):
        first: dict[object, str] = {}
        for lesson, source in english:
            value = getattr(lesson, field)
            if value in first:
                message = f"{field} {value!r} is also lesson {first[value]}"
                problems.append(source.problem((field,), message))
            first.setdefault(value, source.path)
    return served


def _read_field_guide(
    path: Path, rel: str
) -> tuple[FieldGuide | None, Source | None, list[Problem]]:
    """One field guide file, validated; no guide where anything is wrong with it."""
    text, problems = read_text(path, rel)
    source = None
    if text is not None:
        source, problems = parse_yaml(text, rel)
    if source is None:
        return None, None, problems
    try:
        guide = FieldGuide.model_validate(source.data)
    except ValidationError as error:
        return None, source, problems + source.invalid(error)
    if guide.language != path.stem:
        message = f"language {guide.language!r} differs from the file name {path.name}"
        problems.append(source.problem(("language",), message))
    ids = [entry.id for entry in guide.entries]
    for index, value in enumerate(ids):
        if value in ids[:index]:
            problems.append(source.problem(("entries", index, "id"), f"duplicate id {value!r}"))
    return (None if problems else guide), source, problems


def _load_field_guides(root: Path, problems: list[Problem], stale: list[Path]) -> list[FieldGuide]:
    """The field guide under ``root/field-guide``: English and the translations served."""
    folder = root / "field-guide"
    found: dict[str, tuple[FieldGuide, Source]] = {}
    for path in _visible(folder) if folder.is_dir() else []:
        rel = path.relative_to(root).as_posix()
        if path.suffix != ".yaml" or not is_language_tag(path.stem):
            message = "expected <language>.yaml: en.yaml, de.yaml, pt-BR.yaml"
            problems.append(Problem(rel, 1, message))
            continue
        guide, source, wrong = _read_field_guide(path, rel)
        problems += wrong
        if guide is not None and source is not None:
            found[guide.language] = (guide, source)
    if ENGLISH not in found:
        if folder.is_dir() and not (folder / f"{ENGLISH}.yaml").is_file():
            message = "missing: the field guide needs its English file, the source of translations"
            problems.append(Problem("field-guide/en.yaml", 1, message))
        return []
    english = found.pop(ENGLISH)[0]
    return [english, *_translations(english, [*found.values()], problems, stale)]


def load_catalog(root: Path) -> Catalog:
    """Read and validate everything under ``root``; ``ContentError`` lists every problem."""
    if not root.is_dir():
        raise ContentError([Problem(str(root), 1, "no such tutorials folder")])
    problems: list[Problem] = []
    stale: list[Path] = []
    lessons = _load_lessons(root, problems, stale)
    guides = _load_field_guides(root, problems, stale)
    if problems:
        raise ContentError(sorted(problems))
    return Catalog(lessons, guides, stale)


@lru_cache(maxsize=8)
def default_catalog(root: Path | None = None) -> Catalog:
    """The catalog of ``root`` (the repository's tutorials/ by default), read once a process."""
    return load_catalog(root or TUTORIALS)
