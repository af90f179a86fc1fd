"""The tutorial content loader: the shipped lessons and field guide, broken files reported at
their line, translations with their fallbacks and staleness, and language negotiation."""

from pathlib import Path

import pytest

from backend.imaging.mimics import MimicKind
from backend.tutorials.content import (
    TUTORIALS,
    ContentError,
    EntryKind,
    LesionLoad,
    MaterialKind,
    TutorialNotFound,
    default_catalog,
    load_catalog,
)

# Line numbers matter: the broken-file tests below name them.
LESSON = """\
---
id: first
title: First
order: 1
version: 1
language: en
minutes: 2
figures:
  - id: bright
    material: {kind: lesion, load: medium}
    caption: "A lesion."
exercises:
  - id: paint
    material: {kind: lesion}
    prompt: "Paint it."
    explanation: "It was a lesion."
---
Some text.

![A lesion](figure:bright)
"""

GUIDE = """\
version: 1
language: en
entries:
  - id: caps
    kind: mimic
    title: Caps
    tell: "A thin rim."
    body: "Normal."
    keywords: [caps]
    material: {kind: mimic, mimic: periventricular_cap}
    looks_like: "A lesion"
    action: leave unlabelled
"""


def write(root: Path, rel: str, text: str) -> Path:
    """Write ``text`` to ``root/rel``, creating its folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def lesson_text(changes: dict[str, str]) -> str:
    """``LESSON`` with each ``old: new`` of ``changes`` replaced."""
    text = LESSON
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def problems(root: Path) -> list[str]:
    """The problems ``load_catalog`` reports for ``root``."""
    with pytest.raises(ContentError) as caught:
        load_catalog(root)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# The shipped content.


def test_every_shipped_file_validates() -> None:
    catalog = load_catalog(TUTORIALS)
    lessons = catalog.lessons("en")
    assert [lesson.order for lesson in lessons] == [1, 2, 3, 4, 5, 6]
    assert [lesson.id for lesson in lessons] == [
        "what-is-ms",
        "reading-the-images",
        "where-lesions-sit",
        "mimics",
        "no-lesions",
        "studio-tools",
    ]
    assert catalog.stale() == []
    for lesson in lessons:
        words = len(lesson.body.split())
        assert 150 <= words <= 400, (lesson.id, words)
        assert 1 <= len(lesson.exercises) <= 3, lesson.id
    assert default_catalog() is default_catalog()
    assert [lesson.id for lesson in default_catalog().lessons("en")] == [
        lesson.id for lesson in lessons
    ]


def test_each_lesson_practises_what_it_teaches() -> None:
    by_id = {lesson.id: lesson for lesson in load_catalog(TUTORIALS).lessons("en")}
    for lesson_id in ("where-lesions-sit", "mimics", "no-lesions"):
        assert len(by_id[lesson_id].exercises) >= 2, lesson_id
    kinds = {
        lesson_id: [e.material for e in lesson.exercises] for lesson_id, lesson in by_id.items()
    }
    assert all(m.kind is MaterialKind.lesion for m in kinds["where-lesions-sit"])
    # The mimics lesson expects nothing painted on every exercise.
    assert all(m.kind is MaterialKind.mimic for m in kinds["mimics"])
    assert MaterialKind.empty in {m.kind for m in kinds["no-lesions"]}
    everything = [m for materials in kinds.values() for m in materials]
    assert {m.load for m in everything if m.kind is MaterialKind.lesion} >= set(LesionLoad)
    assert {m.mimic for m in everything if m.kind is MaterialKind.mimic} == set(MimicKind)


def test_the_field_guide_covers_lesion_types_and_every_mimic() -> None:
    guide = load_catalog(TUTORIALS).field_guide("en")
    ids = {entry.id for entry in guide.entries}
    assert {
        "periventricular-lesion",
        "dawsons-fingers",
        "t1-black-hole",
        "septum-pellucidum",
    } <= ids
    mimics = [entry for entry in guide.entries if entry.kind is EntryKind.mimic]
    assert len(mimics) == 8
    shown = {e.material.mimic for e in mimics if e.material is not None and e.material.mimic}
    assert shown == set(MimicKind)
    assert all(entry.action == "leave unlabelled" for entry in mimics)
    assert len([e for e in guide.entries if e.kind is EntryKind.lesion]) == 7


# Broken files: each problem names the file and the line.


@pytest.mark.parametrize(
    ("changes", "line", "message"),
    [
        pytest.param({"minutes: 2": "minutes: 2: 3"}, 7, "YAML syntax", id="yaml-syntax"),
        pytest.param(
            {"load: medium}": "load: medium"}, 11, "flow mapping (from line 10)", id="yaml-open"
        ),
        pytest.param(
            {"minutes: 2\n": "minutes: 2\ncolour: red\n"},
            8,
            "unknown field 'colour'",
            id="unknown-field",
        ),
        pytest.param(
            {"    caption": "    credit: me\n    caption"},
            11,
            "unknown field 'figures[0].credit'",
            id="unknown-nested-field",
        ),
        pytest.param({"minutes: 2": "minutes: two"}, 7, "minutes: Input should be", id="type"),
        pytest.param(
            {"title: First": 'title: "First\\nSecond"'}, 3, "title: String should", id="one-line"
        ),
        pytest.param({"version: 1": 'version: "1"'}, 5, "version: Input should be", id="strict"),
        pytest.param(
            {"material: {kind: lesion}": "material: {kind: tumour}"},
            14,
            "exercises[0].material.kind",
            id="nested-type",
        ),
        pytest.param(
            {"material: {kind: lesion}": "material: {kind: empty, load: small}"},
            14,
            "'load' is only for kind: lesion",
            id="material-rule",
        ),
        pytest.param({"  - id: paint\n": "  - id: Paint It\n"}, 13, "exercises[0].id", id="slug"),
        pytest.param(
            {'    prompt: "Paint it."\n': ""},
            13,
            "missing field 'exercises[0].prompt'",
            id="missing",
        ),
        pytest.param(
            {"figure:bright": "figure:dark"}, 20, "'dark' is placed here", id="figure-ref"
        ),
        pytest.param(
            {"![A lesion](figure:bright)": ""}, 9, "'bright' is never placed", id="figure-unplaced"
        ),
        pytest.param({"(figure:bright)": "(lesion.png)"}, 20, "embed no image", id="image-file"),
        pytest.param({"  - id: paint": "  - id: bright"}, 13, "duplicate id 'bright'", id="dup-id"),
        pytest.param(
            {"language: en": "language: de"}, 6, "differs from the file name en.md", id="language"
        ),
        pytest.param({"id: first": "id: second"}, 2, "differs from its folder", id="id-folder"),
        pytest.param({"order: 1": "order: 2"}, 4, "order 2 differs from its folder", id="order"),
        pytest.param(
            {"minutes: 2\n": "minutes: 2\nminutes: 3\n"}, 8, "duplicate key 'minutes'", id="dup-key"
        ),
        pytest.param({"---\nSome": "Some"}, 1, "never closed", id="unclosed"),
        pytest.param(
            {"Some text.\n\n![A lesion](figure:bright)\n": ""},
            9,
            "never placed",
            id="figure-in-no-body",
        ),
    ],
)
def test_a_broken_lesson_names_its_file_and_line(
    tmp_path: Path, changes: dict[str, str], line: int, message: str
) -> None:
    write(tmp_path, "lessons/01-first/en.md", lesson_text(changes))
    found = problems(tmp_path)
    assert any(p.startswith(f"lessons/01-first/en.md:{line}: ") and message in p for p in found), (
        found
    )


def test_an_empty_body_is_refused(tmp_path: Path) -> None:
    text = LESSON.split("figures:")[0] + "exercises: []\n---\n\n"
    write(tmp_path, "lessons/01-first/en.md", text)
    assert problems(tmp_path) == [
        "lessons/01-first/en.md:10: the Markdown after the front matter is empty"
    ]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "lessons/01-first/en.md", lesson_text({"minutes: 2": "minutes: 20"}))
    write(tmp_path, "lessons/02-second/en.md", lesson_text({"id: first": "id: second"}))
    write(tmp_path, "lessons/03-third/notes.txt", "scratch")
    write(tmp_path, "field-guide/en.yaml", GUIDE.replace('    looks_like: "A lesion"\n', ""))
    assert problems(tmp_path) == [
        "field-guide/en.yaml:4: entries[0]: a mimic needs 'looks_like' and 'action'",
        "lessons/01-first/en.md:7: minutes: Input should be less than or equal to 10",
        "lessons/02-second/en.md:4: order 1 differs from its folder",
        "lessons/03-third/en.md:1: missing: a lesson needs its English file, the source of "
        "translations",
        "lessons/03-third/notes.txt:1: expected <language>.md: en.md, de.md, pt-BR.md",
    ]


def test_a_duplicated_order_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "lessons/01-first/en.md", LESSON)
    write(tmp_path, "lessons/01-second/en.md", lesson_text({"id: first": "id: second"}))
    assert problems(tmp_path) == [
        "lessons/01-second/en.md:4: order 1 is also lesson lessons/01-first/en.md"
    ]


def test_a_language_must_match_the_file_name(tmp_path: Path) -> None:
    write(tmp_path, "lessons/01-first/en.md", LESSON)
    write(tmp_path, "lessons/01-first/de.md", LESSON)
    assert problems(tmp_path) == [
        "lessons/01-first/de.md:6: language 'en' differs from the file name de.md"
    ]


def test_a_broken_field_guide_names_its_line(tmp_path: Path) -> None:
    write(tmp_path, "field-guide/en.yaml", GUIDE.replace("keywords: [caps]", "keywords: caps"))
    write(tmp_path, "field-guide/de.yaml", GUIDE.replace("_cap}", "_caps}"))
    found = problems(tmp_path)
    assert found[0].startswith("field-guide/de.yaml:10: entries[0].material.mimic: Input should be")
    assert found[1:] == ["field-guide/en.yaml:9: entries[0].keywords: Input should be a valid list"]


def test_a_guide_without_english_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "field-guide/de.yaml", GUIDE.replace("language: en", "language: de"))
    assert problems(tmp_path) == [
        "field-guide/en.yaml:1: missing: the field guide needs its English file, the source of "
        "translations"
    ]


# Translations: the best one served, stale ones skipped.


def translated(root: Path, language: str, version: int, english_version: int = 2) -> None:
    """Lesson ``first`` in English at ``english_version`` and in ``language`` at ``version``."""
    write(
        root, "lessons/01-first/en.md", lesson_text({"version: 1": f"version: {english_version}"})
    )
    text = lesson_text(
        {
            "version: 1": f"version: {version}",
            "language: en": f"language: {language}",
            "title: First": f"title: First ({language})",
        }
    )
    write(root, f"lessons/01-first/{language}.md", text)


@pytest.mark.parametrize(
    ("asked", "title"),
    [
        ("de", "First (de)"),
        ("de-AT", "First (de)"),
        ("DE-at", "First (de)"),
        ("fr", "First"),
        ("en-GB", "First"),
    ],
)
def test_a_current_translation_is_served_for_its_language(
    tmp_path: Path, asked: str, title: str
) -> None:
    translated(tmp_path, "de", version=2)
    catalog = load_catalog(tmp_path)
    assert [lesson.title for lesson in catalog.lessons(asked)] == [title]
    assert catalog.lesson("first", asked).title == title
    assert catalog.languages() == ["en", "de"]


def test_a_base_language_serves_its_regions(tmp_path: Path) -> None:
    translated(tmp_path, "pt", version=2)
    catalog = load_catalog(tmp_path)
    assert catalog.lesson("first", "pt-BR").title == "First (pt)"
    assert catalog.lesson("first", "pt").language == "pt"


def test_an_outdated_translation_is_stale_and_english_is_served(tmp_path: Path) -> None:
    translated(tmp_path, "de", version=1)
    catalog = load_catalog(tmp_path)
    assert catalog.lesson("first", "de").language == "en"
    assert catalog.lessons("de-AT")[0].title == "First"
    assert catalog.stale() == [Path("lessons/01-first/de.md")]
    assert catalog.languages() == ["en"]


def test_a_translation_ahead_of_english_is_refused(tmp_path: Path) -> None:
    translated(tmp_path, "de", version=3)
    assert problems(tmp_path) == [
        "lessons/01-first/de.md:5: version 3 is ahead of English (version 2)"
    ]


def test_a_current_translation_keeps_the_exercises(tmp_path: Path) -> None:
    translated(tmp_path, "de", version=2)
    german = tmp_path / "lessons/01-first/de.md"
    german.write_text(german.read_text().replace("{kind: lesion}", "{kind: empty}"))
    assert problems(tmp_path) == [
        "lessons/01-first/de.md:12: exercises differ from English at the same version"
    ]


def test_the_field_guide_falls_back_like_lessons(tmp_path: Path) -> None:
    write(tmp_path, "field-guide/en.yaml", GUIDE.replace("version: 1", "version: 2"))
    german = GUIDE.replace("language: en", "language: de").replace("title: Caps", "title: Kappen")
    write(tmp_path, "field-guide/de.yaml", german.replace("version: 1", "version: 2"))
    write(tmp_path, "field-guide/fr.yaml", GUIDE.replace("language: en", "language: fr"))
    catalog = load_catalog(tmp_path)
    assert catalog.field_guide("de-CH").entries[0].title == "Kappen"
    assert catalog.field_guide("fr").language == "en"
    assert catalog.stale() == [Path("field-guide/fr.yaml")]
    assert catalog.lessons("de") == []


def test_lookups_of_what_does_not_exist_are_not_found(tmp_path: Path) -> None:
    write(tmp_path, "lessons/01-first/en.md", LESSON)
    catalog = load_catalog(tmp_path)
    with pytest.raises(KeyError):
        catalog.lesson("second", "en")
    with pytest.raises(TutorialNotFound, match="no exercise 'draw'"):
        catalog.lesson("first", "en").exercise("draw")
    assert catalog.lesson("first", "en").exercise("paint").material.kind is MaterialKind.lesion
    with pytest.raises(TutorialNotFound) as caught:
        catalog.field_guide("en")
    assert caught.value.status_code == 404


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path / "nowhere")[0].endswith(":1: no such tutorials folder")


# Accept-Language.


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("DE-at", "de"),
        ("de-AT,de;q=0.9,en;q=0.8", "de"),
        ("fr;q=1, de;q=0.5, en;q=0.4", "de"),
        ("en;q=0.9, de;q=0.1", "en"),
        ("de;q=0.1, en", "en"),  # weight, not position
        ("de;q=0, fr", "en"),  # q=0: not acceptable
        ("pt", "pt-BR"),  # a base language takes a regional one
        ("pt-PT, de;q=0.2", "pt-BR"),  # pt-PT -> pt -> pt-BR, before de
        ("fr, *;q=0.5", "en"),
        ("de;q=abc, pt-br", "pt-BR"),  # a malformed weight drops that range
        ("es-419, fr", "en"),
    ],
)
def test_pick_language_reads_weights(tmp_path: Path, header: str | None, language: str) -> None:
    for tag in ("en", "de", "pt-BR"):
        write(
            tmp_path,
            f"lessons/01-first/{tag}.md",
            lesson_text({"language: en": f"language: {tag}"}),
        )
    assert load_catalog(tmp_path).pick_language(header) == language
